//! Your own actors, your own node: a `bankAccount` actor built into its own node binary, and
//! unit-tested on an in-process cluster. The README's "Your own actors, your own node" shows this
//! file as an application's `src/main.rs`.
//!
//! ```console
//! $ cargo build --release --example bank_node
//! $ target/release/examples/bank_node dev                  # three local nodes, Ctrl-C stops them
//! $ target/release/examples/bank_node call bankAccount acc-1 deposit '{"amount": 100}'
//! 100
//! $ cargo test --release --example bank_node               # the test at the end, on a TestCluster
//! ```

use mortar_node::prelude::*;
use serde::{Deserialize, Serialize};

/// A bank account: its balance in cents, never below zero.
pub struct BankAccount;

#[derive(Default, Serialize, Deserialize)]
pub struct Balance {
    cents: i64,
}

#[derive(Serialize, Deserialize)]
pub struct Deposit {
    amount: i64,
}

#[derive(Serialize, Deserialize)]
pub struct Withdraw {
    amount: i64,
}

#[derive(Serialize, Deserialize)]
pub struct GetBalance;

impl Action for Deposit {
    const NAME: &'static str = "deposit";
    type Output = i64;
}

impl Action for Withdraw {
    const NAME: &'static str = "withdraw";
    type Output = i64;
}

impl Action for GetBalance {
    const NAME: &'static str = "getBalance";
    type Output = i64;
}

impl Actor for BankAccount {
    const NAME: &'static str = "bankAccount";
    type State = Balance;
    type Input = ();
    type Events = ();
    type Vars = ();
    type ConnParams = ();
    type ConnState = ();

    type Actions = (Deposit, Withdraw, GetBalance);
}

impl Handles<Deposit> for BankAccount {
    async fn handle(&self, deposit: Deposit, ctx: &mut Context<Self>) -> Result<i64, ActorError> {
        if deposit.amount <= 0 {
            return Err(ActorError::invalid_argument("deposit a positive amount"));
        }
        ctx.state_mut().cents += deposit.amount;
        Ok(ctx.state().cents)
    }
}

impl Handles<Withdraw> for BankAccount {
    async fn handle(&self, withdraw: Withdraw, ctx: &mut Context<Self>) -> Result<i64, ActorError> {
        let cents = ctx.state().cents;
        if withdraw.amount > cents {
            return Err(ActorError::user("insufficient_funds", format!("the balance is {cents}")));
        }
        ctx.state_mut().cents -= withdraw.amount;
        Ok(ctx.state().cents)
    }
}

impl Handles<GetBalance> for BankAccount {
    async fn handle(&self, _: GetBalance, ctx: &mut Context<Self>) -> Result<i64, ActorError> {
        Ok(ctx.state().cents)
    }
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register(BankAccount);
    registry
}

// `main` with the whole `mortar` command line (`node`, `dev`, `call`, ...), logging, metrics and
// the allocator, hosting `bankAccount`.
mortar_node::node_main!(registry());

#[cfg(test)]
mod tests {
    use super::*;
    use mortar_node::testing::TestCluster;

    #[tokio::test(flavor = "multi_thread")]
    async fn the_balance_survives_a_kill_of_its_owner() {
        let mut cluster = TestCluster::start(3, registry).await;
        let client = cluster.client().await;
        let account = client.actor::<BankAccount>("acc-1");
        assert_eq!(account.call(Deposit { amount: 100 }).await.unwrap(), 100);
        let refused = account.call(Withdraw { amount: 500 }).await.unwrap_err();
        assert!(matches!(refused, CallError::User { code, .. } if code == "insufficient_funds"));

        cluster.kill(cluster.owner::<BankAccount>("acc-1").await).await;
        assert_eq!(account.call(Withdraw { amount: 30 }).await.unwrap(), 70);
        assert_eq!(account.call(GetBalance).await.unwrap(), 70);
    }
}
