module github.com/fiber-endpoints/healthcheck

go 1.26.8
