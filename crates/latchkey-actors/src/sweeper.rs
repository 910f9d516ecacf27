//! The sweeper: every tick it reads the expiry index and asks the entities concerned to
//! record `ChallengeExpired`, `DeviceAuthorizationExpired`, `PairingCodeExpired` and
//! `TokenExpired`. Auth, the device flow and pairing codes check `expires_at` themselves, so sweeper lag is never a hole; the
//! events keep the log and the read models honest.
//!
//! "Now" is the core's clock, so a test (or `serve --test-clock`) that moves a manual
//! clock runs [`sweep`] itself instead of waiting for a tick.

use crate::core::Core;
use crate::error::CoreError;
use actix::prelude::*;
use latchkey_domain::{Actor as Who, PairingCommand, UserCommand};
use std::sync::Weak;
use std::time::Duration;

/// Most items handled per tick.
const PER_TICK: usize = 256;

/// The sweeper actor.
pub struct Sweeper {
    core: Weak<Core>,
    every: Duration,
    busy: bool,
}

/// Stops the sweeper.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

/// One sweep at the core's "now": expires up to `PER_TICK` lapsed challenges, as many
/// lapsed device requests, and the
/// lapsed tokens of up to `PER_TICK` users. A failed read of the expiry index is an error
/// (the caller retries on its next tick), never "nothing to sweep"; a failed command is
/// logged and the sweep goes on.
pub async fn sweep(core: &Core) -> Result<(), CoreError> {
    // The due lists are read models: bring them to every answered seq first, so a
    // challenge acknowledged before its fsync and its projection (see
    // `Core::issue_challenge`) is seen.
    core.wait_settled(core.store().written_head()).await?;
    let now = core.now();
    for id in core.models().due_challenges(now, PER_TICK)? {
        let r = core
            .pairings()
            .execute(id.stream(), PairingCommand::Expire { now }, Who::System)
            .await;
        if let Err(e) = r {
            tracing::warn!(challenge = %id, error = %e, "expiring a challenge failed");
        }
    }
    core.expire_devices(now, PER_TICK).await?;
    core.expire_pairing_codes(now, PER_TICK).await?;
    for user in core.models().due_token_owners(now, PER_TICK)? {
        let r = core
            .users()
            .execute(
                user.stream(),
                UserCommand::ExpireTokens { now },
                Who::System,
            )
            .await;
        if let Err(e) = r {
            tracing::warn!(user = %user, error = %e, "expiring tokens failed");
        }
    }
    core.compact_if_due().await
}

impl Sweeper {
    /// A sweeper over `core`, ticking every `every`.
    pub fn new(core: Weak<Core>, every: Duration) -> Self {
        Self {
            core,
            every,
            busy: false,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        let Some(core) = self.core.upgrade() else {
            ctx.stop();
            return;
        };
        self.busy = true;
        let fut = async move {
            if let Err(e) = sweep(&core).await {
                tracing::warn!(error = %e, "reading the expiry index failed; retrying next tick");
            }
        };
        ctx.spawn(fut.into_actor(self).map(|(), act, _| act.busy = false));
    }
}

impl Actor for Sweeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.every, |act, ctx| act.tick(ctx));
    }
}

impl Handler<Stop> for Sweeper {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
