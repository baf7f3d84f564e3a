//! odxctl
fn main() {}
