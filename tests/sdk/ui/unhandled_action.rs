// `GetCount` is listed, but `Counter` does not handle it.
include!("common/counter.rs");

fn main() {}
