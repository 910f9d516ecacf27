//! Several nodes on one log (DESIGN §11): a node that is about to answer 401 or 404 for a
//! value it does not know first catches up to the newest event any node has written, so a
//! token minted, a challenge issued or a room created on another node a moment ago is found.
//! On the single-node sled store every check here is free and answers at once.

use crate::core::Core;
use crate::error::CoreError;
use latchkey_domain::token;

impl Core {
    /// Brings this node's log copy and read models up to the stream's last event (no-op on
    /// a store no other node writes).
    pub async fn catch_up(&self) -> Result<(), CoreError> {
        if !self.store().is_shared() {
            return Ok(());
        }
        let head = self
            .store()
            .catch_up(self.config().projection_timeout)
            .await?;
        self.wait_applied(head).await
    }

    /// Catches up when `bearer` is a well-formed token this node does not know: the check
    /// before a 401 on a shared log. Garbage never costs a round trip.
    pub async fn catch_up_for_token(&self, bearer: &str) {
        if !self.store().is_shared() {
            return;
        }
        let Ok(parsed) = token::parse(bearer) else {
            return;
        };
        if parsed.prefix().kind().is_none() {
            return;
        }
        if matches!(self.models().token_by_hash(&parsed.hash()), Ok(None)) {
            if let Err(e) = self.catch_up().await {
                tracing::warn!(error = %e, "catching up before a 401 failed");
            }
        }
    }

    /// Runs a read-model lookup; when it finds nothing on a shared log, catches up and runs
    /// it once more (the check before a 401 or 404 for a code, ticket or id another node
    /// may have made a moment ago).
    pub async fn lookup_fresh<T, E>(
        &self,
        f: impl Fn() -> Result<Option<T>, E>,
    ) -> Result<Option<T>, E>
    where
        E: From<CoreError>,
    {
        let found = f()?;
        if found.is_some() || !self.store().is_shared() {
            return Ok(found);
        }
        self.catch_up().await?;
        f()
    }

    /// Runs a lookup; when it finds nothing (`NotFound` or `Unauthorized`) on a shared log,
    /// catches up and runs it once more.
    pub async fn fresh<T, F, Fut>(&self, mut f: F) -> Result<T, CoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, CoreError>>,
    {
        match f().await {
            Err(CoreError::NotFound(_) | CoreError::Unauthorized) if self.store().is_shared() => {
                self.catch_up().await?;
                f().await
            }
            other => other,
        }
    }
}
