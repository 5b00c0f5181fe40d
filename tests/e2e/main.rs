//! End-to-end tests: they run the real `loop` binary on real files.

mod architecture;
mod bad_inputs;
mod check;
mod cluster;
mod compose;
mod control;
mod dashboard;
mod docs;
mod extensions;
mod images;
mod k8s;
mod lsp;
mod mcp;
mod processes;
mod render;
mod run;
mod signals;
mod support;
mod tilt;
mod tilt_corpus;
mod tilt_semantics;
mod verbosity;
