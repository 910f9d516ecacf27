//! The Decider pattern every aggregate follows: `decide` holds the rules, `evolve` only
//! assigns, `fold` rebuilds a state from its stream.
//!
//! Must not: read the clock, make random values or touch I/O. The context of a command
//! (`now`, the caller's IP, ids and random values the caller made) travels *inside the
//! command* as plain fields, so `decide` is a function of `(state, command)` alone and a
//! replay of the log never needs the context again: the events already carry it.

/// An aggregate's rules, as three pure functions.
///
/// Actors are a thin shell around this: load, `fold`, `decide`, append with the expected
/// version, `evolve` the appended events. Replay tooling uses the same `fold`, so there is
/// no second code path.
pub trait Decider {
    /// What a caller asks for. Carries its context (`now`, IP, caller-made ids and
    /// random values) as fields.
    type Command;
    /// What happened; the only thing stored.
    type Event;
    /// What `decide` needs to know, rebuilt from events.
    type State: Default;
    /// Why a command was refused; a refusal stores nothing.
    type Error;

    /// Applies the rules. An idempotent repeat returns `Ok(vec![])`; a refusal returns
    /// `Err` and changes nothing.
    fn decide(state: &Self::State, cmd: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Records one event in the state. No rules here: set a field, push to a list.
    /// An event that does not fit the state (a corrupt or foreign stream) leaves the state
    /// as it is rather than panicking.
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    /// Whether the state accepts no further commands (a consumed or expired pairing), so an
    /// actor can stop and a registry can forget it.
    fn is_terminal(_state: &Self::State) -> bool {
        false
    }
}

/// Rebuilds a state from the start of its stream.
pub fn fold<'a, D>(events: impl IntoIterator<Item = &'a D::Event>) -> D::State
where
    D: Decider,
    D::Event: 'a,
{
    evolve_all::<D>(D::State::default(), events)
}

/// Applies events, in order, to a state: what an actor does after its append succeeded.
pub fn evolve_all<'a, D>(
    state: D::State,
    events: impl IntoIterator<Item = &'a D::Event>,
) -> D::State
where
    D: Decider,
    D::Event: 'a,
{
    events.into_iter().fold(state, D::evolve)
}

/// Links an aggregate's event type to its decider, so `testing::given(vec![..])` infers
/// the decider from the events alone.
pub trait AggregateEvent: Sized {
    /// The decider whose stream holds this event type.
    type Decider: Decider<Event = Self>;
}

/// given/when/then for deciders: `given(events).when(cmd).then(events)` or
/// `.then_error(err)`.
///
/// Public behind the `testing` feature so the actors and server crates can write their own
/// protocol tests in the same words.
#[cfg(any(test, feature = "testing"))]
#[allow(clippy::panic)]
pub mod testing {
    use super::{evolve_all, fold, AggregateEvent, Decider};
    use std::fmt::Debug;

    /// A history: the events already in the stream.
    pub struct Given<D: Decider> {
        history: Vec<D::Event>,
    }

    /// A history and the outcome of one command on it.
    pub struct When<D: Decider> {
        history: Vec<D::Event>,
        result: Result<Vec<D::Event>, D::Error>,
    }

    /// Starts a test from these past events (the decider is inferred from their type).
    pub fn given<E: AggregateEvent>(history: Vec<E>) -> Given<E::Decider> {
        Given { history }
    }

    /// Starts a test from an empty stream of decider `D`.
    pub fn given_nothing<D: Decider>() -> Given<D> {
        Given {
            history: Vec::new(),
        }
    }

    impl<D: Decider> Given<D> {
        /// Decides `cmd` on the state folded from the history.
        pub fn when(self, cmd: impl Into<D::Command>) -> When<D> {
            let state = fold::<D>(&self.history);
            let result = D::decide(&state, &cmd.into());
            When {
                history: self.history,
                result,
            }
        }
    }

    impl<D> When<D>
    where
        D: Decider,
        D::Event: PartialEq + Debug,
        D::Error: PartialEq + Debug,
    {
        /// Asserts the command produced exactly these events; returns the state after them
        /// for further checks.
        #[track_caller]
        pub fn then(self, expected: Vec<D::Event>) -> D::State {
            match self.result {
                Ok(events) => {
                    assert_eq!(events, expected, "unexpected events");
                    let state = fold::<D>(&self.history);
                    evolve_all::<D>(state, &events)
                }
                Err(e) => panic!("expected events {expected:?}, got error {e:?}"),
            }
        }

        /// Asserts the command was idempotent: accepted, with no events.
        #[track_caller]
        pub fn then_nothing(self) -> D::State {
            self.then(Vec::new())
        }

        /// Asserts the command was refused with exactly this error.
        #[track_caller]
        pub fn then_error(self, expected: D::Error) {
            match self.result {
                Ok(events) => panic!("expected error {expected:?}, got events {events:?}"),
                Err(e) => assert_eq!(e, expected, "unexpected error"),
            }
        }

        /// The raw outcome, for checks that do not fit `then` (e.g. generated ids).
        pub fn result(self) -> Result<Vec<D::Event>, D::Error> {
            self.result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{given, given_nothing};
    use super::*;

    /// A counter that refuses to go above 2: enough to exercise the helpers.
    struct Counter;

    #[derive(Debug, PartialEq)]
    struct Incremented;

    impl AggregateEvent for Incremented {
        type Decider = Counter;
    }

    impl Decider for Counter {
        type Command = ();
        type Event = Incremented;
        type State = u8;
        type Error = &'static str;

        fn decide(state: &u8, _cmd: &()) -> Result<Vec<Incremented>, &'static str> {
            if *state >= 2 {
                Err("full")
            } else {
                Ok(vec![Incremented])
            }
        }

        fn evolve(state: u8, _event: &Incremented) -> u8 {
            state + 1
        }

        fn is_terminal(state: &u8) -> bool {
            *state >= 2
        }
    }

    #[test]
    fn fold_applies_every_event() {
        assert_eq!(fold::<Counter>(&[Incremented, Incremented]), 2);
        assert!(Counter::is_terminal(&2));
    }

    #[test]
    fn given_when_then_reads_like_the_protocol() {
        let state = given_nothing::<Counter>().when(()).then(vec![Incremented]);
        assert_eq!(state, 1);
        given(vec![Incremented, Incremented])
            .when(())
            .then_error("full");
    }
}
