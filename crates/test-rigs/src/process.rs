//! Child processes that are killed when the test ends, even on panic.
