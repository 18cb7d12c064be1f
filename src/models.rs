//! Model zoo manifest.
