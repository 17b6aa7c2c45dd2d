"""The pipeline as one library API: a `JobSpec` in, `run_job`, a `JobReport` out. The CLI, the Makefile, the
benchmarks and the service's workers all call it; nothing here imports the CLI."""
