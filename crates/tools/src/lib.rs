//! The built-in agent tools. Placeholder while they are written.
