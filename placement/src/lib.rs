//! Placeholder: membership and ring arrive with the actor issue.
