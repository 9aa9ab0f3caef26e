//! One file per message handler, named after the message (EPaxos, SOSP'13, Figure 2).

mod accept;
mod accept_ok;
mod commit;
mod commit_request;
mod nack;
mod pre_accept;
mod pre_accept_ok;
mod prepare;
mod prepare_ok;
mod take_over;
mod try_pre_accept;
mod try_pre_accept_reply;

pub(crate) use try_pre_accept::covers;

#[cfg(test)]
pub(crate) mod handler_test;
