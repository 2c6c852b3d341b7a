//! Every envd-backed tool driven through `Toolbox::call` against a real envd over a fixture tree:
//! one test binary, a module per tool.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

#[path = "../common/mod.rs"]
mod common;

mod bash;
mod edit_file;
mod read_file;
mod search;
mod toolbox;
