//! Placeholder: the chaos harness arrives with its own issue.
