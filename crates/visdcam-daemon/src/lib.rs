//! visdcam runtime glue.
