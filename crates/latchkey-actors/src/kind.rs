//! Ties each domain decider to the log's `Event` enum and its passivation time, so the
//! generic entity and registry can rehydrate and append any aggregate.

use latchkey_domain::{
    Decider, Event, PairingDecider, PairingEvent, RoomDecider, RoomEvent, UserDecider, UserEvent,
};
use std::time::Duration;

/// An aggregate an entity actor can host.
pub trait Kind:
    Decider<
        State: Clone + Send + Unpin + 'static,
        Command: Clone + Send + Unpin + 'static,
        Error: Send + Unpin + 'static,
        Event: Clone + Send + Unpin + 'static,
    > + Send
    + Unpin
    + 'static
{
    /// How long an idle entity stays in memory (DESIGN §5).
    const PASSIVATE_AFTER: Duration;
    /// This aggregate's event inside a log event, if it is one.
    fn extract(event: &Event) -> Option<&Self::Event>;
    /// Wraps this aggregate's event for the log.
    fn wrap(event: Self::Event) -> Event;
}

impl Kind for UserDecider {
    const PASSIVATE_AFTER: Duration = Duration::from_secs(600);
    fn extract(event: &Event) -> Option<&UserEvent> {
        match event {
            Event::User(e) => Some(e),
            _ => None,
        }
    }
    fn wrap(event: UserEvent) -> Event {
        Event::User(event)
    }
}

impl Kind for PairingDecider {
    const PASSIVATE_AFTER: Duration = Duration::from_secs(60);
    fn extract(event: &Event) -> Option<&PairingEvent> {
        match event {
            Event::Pairing(e) => Some(e),
            _ => None,
        }
    }
    fn wrap(event: PairingEvent) -> Event {
        Event::Pairing(event)
    }
}

impl Kind for RoomDecider {
    const PASSIVATE_AFTER: Duration = Duration::from_secs(600);
    fn extract(event: &Event) -> Option<&RoomEvent> {
        match event {
            Event::Room(e) => Some(e),
            _ => None,
        }
    }
    fn wrap(event: RoomEvent) -> Event {
        Event::Room(event)
    }
}
