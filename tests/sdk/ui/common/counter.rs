// The correct actor every case starts from (included by each case); with `get_count.rs` it
// compiles as it is, and each case adds one mistake.

use mortar_node::prelude::*;
use serde::{Deserialize, Serialize};

pub struct Counter;

#[derive(Default, Serialize, Deserialize)]
pub struct CounterState {
    pub count: i64,
}

#[derive(Serialize, Deserialize)]
pub struct Increment {
    pub amount: i64,
}

impl Action for Increment {
    type Output = i64;
    const NAME: &'static str = "increment";
}

#[derive(Serialize, Deserialize)]
pub struct GetCount;

impl Action for GetCount {
    type Output = i64;
    const NAME: &'static str = "getCount";
}

#[derive(Serialize, Deserialize)]
pub struct NewCount {
    pub count: i64,
}

impl Event for NewCount {
    const NAME: &'static str = "newCount";
}

#[derive(Serialize, Deserialize)]
pub struct Zeroed;

impl Event for Zeroed {
    const NAME: &'static str = "zeroed";
}

/// Both an action and an event, and `Counter` lists it as neither.
#[derive(Serialize, Deserialize)]
pub struct Reset;

impl Action for Reset {
    type Output = ();
    const NAME: &'static str = "reset";
}

impl Event for Reset {
    const NAME: &'static str = "reset";
}

impl Actor for Counter {
    const NAME: &'static str = "counter";
    type State = CounterState;
    type Input = ();
    type Actions = (Increment, GetCount);
    type Events = (NewCount, Zeroed);
    type Vars = ();
    type ConnParams = ();
    type ConnState = ();
}

impl Handles<Increment> for Counter {
    async fn handle(&self, action: Increment, ctx: &mut Context<Self>) -> Result<i64, ActorError> {
        ctx.state_mut().count += action.amount;
        let count = ctx.state().count;
        ctx.emit(NewCount { count })?;
        Ok(count)
    }
}

/// A mistake needs an actor context to be made in.
pub fn handled_elsewhere(ctx: &Context<Counter>) -> i64 {
    ctx.state().count
}
