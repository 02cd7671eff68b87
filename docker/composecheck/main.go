// Command composecheck loads a compose file the way `docker compose config` does, with the
// Compose Specification's own Go loader (compose-go: schema validation, interpolation, YAML merge
// keys, normalisation), and prints the resulting project as JSON. No Docker engine is needed.
//
//	go run . ../../compose.yaml
//
// Interpolation sees no environment variables, so every ${VAR:-default} takes its default: the
// output is what a plain `docker compose up` runs.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: composecheck COMPOSE_FILE")
		os.Exit(2)
	}
	opts, err := cli.NewProjectOptions([]string{os.Args[1]}, cli.WithName("fiber-endpoints"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
	out, err := project.MarshalJSON()
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
	fmt.Println(string(out))
}
