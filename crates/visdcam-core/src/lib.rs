//! visdcam core.
