"""The `dyadic` command line, configs, pipelines and benchmarks."""
