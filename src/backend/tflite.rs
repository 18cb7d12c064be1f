//! TensorFlow Lite backend (C API loaded at run time). Not yet implemented.
