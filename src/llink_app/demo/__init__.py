"""`llink demo`: the pipeline, its report and the README block."""
