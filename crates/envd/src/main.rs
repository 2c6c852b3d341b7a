//! envd binary: placeholder.
fn main() {}
