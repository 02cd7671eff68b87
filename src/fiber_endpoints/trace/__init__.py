"""Where the time goes: Jaeger (install, start, query), span breakdown, the ``trace`` command.

The data flows one way: ``client`` sends requests whose trace ids it chooses, ``jaeger`` fetches
those traces back as ``spans.Span`` lists, ``breakdown`` turns each into a ``RequestBreakdown``
(pure arithmetic), ``plots`` draws them, and ``command`` wires it together for the CLI.
"""
