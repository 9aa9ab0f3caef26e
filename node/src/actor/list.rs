//! The type lists of an actor: [`Actor::Actions`](super::Actor::Actions) and
//! [`Actor::Events`](super::Actor::Events) are tuples of types, `(Increment, GetCount)` and
//! `(NewCount,)`, checked at compile time.
//!
//! * Every listed action must be handled: a tuple is an [`ActionList`] of actor `A` only when
//!   `A` implements [`Handles`] for each of its types.
//! * Only listed actions can be called and only declared events emitted or subscribed to:
//!   the typed calls ([`ActorRef::call`](super::ActorRef::call),
//!   [`Schedule::after`](super::Schedule::after), ..) and events ([`Context::emit`](super::Context::emit),
//!   [`ActorRef::subscribe`](super::ActorRef::subscribe), ..) require [`Lists`]`<X, I>` of the
//!   tuple, where the index `I` is found by the compiler (it is never written).
//!
//! Stable Rust cannot tell a type *not* in a list in a trait bound (coherence rejects the
//! overlapping impls that would need), so a `Handles<X>` for an `X` the actor does not list
//! compiles; it is dead code: nothing can call `X`.

use super::registry::Handlers;
use super::sdk::{Action, Actor, Event, Handles};

/// The position of a type in a list ([`Lists`]): the compiler infers it.
pub struct Idx<const N: usize>;

/// Tuple `Self` has `T` at position `I`. Implemented for tuples of up to
/// [`LIST_LEN_MAX`] types; a type listed twice makes the position ambiguous (a compile error
/// where it is used).
#[diagnostic::on_unimplemented(
    message = "`{T}` is not in the list `{Self}`",
    label = "not listed in the actor's `type Actions` or `type Events`",
    note = "typed calls, alarms, emitted events and subscriptions take only what the actor lists"
)]
pub trait Lists<T, I> {}

/// The most types an [`Actor::Actions`](super::Actor::Actions) or
/// [`Actor::Events`](super::Actor::Events) tuple may list.
pub const LIST_LEN_MAX: usize = 16;

/// The actions of actor `A`: a tuple of [`Action`] types, each handled by `A` (`()` for none).
pub trait ActionList<A: Actor> {
    /// The names of the actions, in the tuple's order.
    const NAMES: &'static [&'static str];
    /// Adds the handlers of the listed actions.
    #[doc(hidden)]
    fn register(handlers: &mut Handlers<A>);
}

/// The events of an actor: a tuple of [`Event`] types (`()` for none).
pub trait EventList {
    /// The names of the events, in the tuple's order.
    const NAMES: &'static [&'static str];
}

impl<A: Actor> ActionList<A> for () {
    const NAMES: &'static [&'static str] = &[];
    fn register(_: &mut Handlers<A>) {}
}

impl EventList for () {
    const NAMES: &'static [&'static str] = &[];
}

/// `Lists` for the element at one position: `lists_at!((T0, T1, ..), T1, 1)`.
macro_rules! lists_at {
    (($($all:ident),+), $t:ident, $i:literal) => {
        // Not listed among "the other types that implement" it in errors: they say nothing useful.
        #[diagnostic::do_not_recommend]
        impl<$($all),+> Lists<$t, Idx<$i>> for ($($all,)+) {}
    };
}

/// The lists of one length: `tuple!((T0, T1); T0 0, T1 1)`.
macro_rules! tuple {
    ($all:tt; $($t:ident $i:literal),+) => {
        $( lists_at!($all, $t, $i); )+

        impl<Z: Actor, $($t: Action),+> ActionList<Z> for ($($t,)+)
        where
            $( Z: Handles<$t>, )+
        {
            const NAMES: &'static [&'static str] = &[$($t::NAME),+];
            fn register(handlers: &mut Handlers<Z>) {
                $( handlers.add::<$t>(); )+
            }
        }

        impl<$($t: Event),+> EventList for ($($t,)+) {
            const NAMES: &'static [&'static str] = &[$($t::NAME),+];
        }
    };
}

tuple!((T0); T0 0);
tuple!((T0, T1); T0 0, T1 1);
tuple!((T0, T1, T2); T0 0, T1 1, T2 2);
tuple!((T0, T1, T2, T3); T0 0, T1 1, T2 2, T3 3);
tuple!((T0, T1, T2, T3, T4); T0 0, T1 1, T2 2, T3 3, T4 4);
tuple!((T0, T1, T2, T3, T4, T5); T0 0, T1 1, T2 2, T3 3, T4 4, T5 5);
tuple!((T0, T1, T2, T3, T4, T5, T6); T0 0, T1 1, T2 2, T3 3, T4 4, T5 5, T6 6);
tuple!((T0, T1, T2, T3, T4, T5, T6, T7); T0 0, T1 1, T2 2, T3 3, T4 4, T5 5, T6 6, T7 7);
tuple!((T0, T1, T2, T3, T4, T5, T6, T7, T8); T0 0, T1 1, T2 2, T3 3, T4 4, T5 5, T6 6, T7 7, T8 8);
tuple!((T0, T1, T2, T3, T4, T5, T6, T7, T8, T9); T0 0, T1 1, T2 2, T3 3, T4 4, T5 5, T6 6, T7 7, T8 8, T9 9);
tuple!((T0, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10);
    T0 0, T1 1, T2 2, T3 3, T4 4, T5 5, T6 6, T7 7, T8 8, T9 9, T10 10);
tuple!((T0, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11);
    T0 0, T1 1, T2 2, T3 3, T4 4, T5 5, T6 6, T7 7, T8 8, T9 9, T10 10, T11 11);
tuple!((T0, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12);
    T0 0, T1 1, T2 2, T3 3, T4 4, T5 5, T6 6, T7 7, T8 8, T9 9, T10 10, T11 11, T12 12);
tuple!((T0, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13);
    T0 0, T1 1, T2 2, T3 3, T4 4, T5 5, T6 6, T7 7, T8 8, T9 9, T10 10, T11 11, T12 12, T13 13);
tuple!((T0, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14);
    T0 0, T1 1, T2 2, T3 3, T4 4, T5 5, T6 6, T7 7, T8 8, T9 9, T10 10, T11 11, T12 12, T13 13, T14 14);
tuple!((T0, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14, T15);
    T0 0, T1 1, T2 2, T3 3, T4 4, T5 5, T6 6, T7 7, T8 8, T9 9, T10 10, T11 11, T12 12, T13 13, T14 14,
    T15 15);
