//! [`RunControl`]: the handle the runs API holds to steer a running loop — cancel (now, or after
//! the current step), pause at the next step boundary, resume. Cheap to clone; every clone steers
//! the same run.

use std::sync::Arc;

use runtools_protocol::agent::CancelMode;
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Requested {
    cancel: Option<CancelMode>,
    paused: bool,
}

/// Steers one run.
#[derive(Debug, Clone)]
pub struct RunControl {
    sender: Arc<watch::Sender<Requested>>,
}

impl Default for RunControl {
    fn default() -> Self {
        Self::new()
    }
}

impl RunControl {
    pub fn new() -> Self {
        Self { sender: Arc::new(watch::Sender::new(Requested::default())) }
    }

    /// Asks the run to stop. `Immediate` aborts the in-flight model call and tool calls;
    /// `AfterStep` lets the current step finish. An immediate request wins over an earlier
    /// after-step one, never the other way round.
    pub fn cancel(&self, mode: CancelMode) {
        self.sender.send_modify(|requested| {
            if requested.cancel != Some(CancelMode::Immediate) {
                requested.cancel = Some(mode);
            }
        });
    }

    /// Asks the run to pause at its next step boundary.
    pub fn pause(&self) {
        self.sender.send_modify(|requested| requested.paused = true);
    }

    /// Lets a paused run (or one asked to pause) carry on.
    pub fn resume(&self) {
        self.sender.send_modify(|requested| requested.paused = false);
    }

    /// The cancellation asked for, if any.
    pub fn cancel_requested(&self) -> Option<CancelMode> {
        self.sender.borrow().cancel
    }

    pub fn pause_requested(&self) -> bool {
        self.sender.borrow().paused
    }

    /// Completes when an immediate cancellation is asked for.
    pub(crate) async fn cancelled_immediately(&self) {
        let mut receiver = self.sender.subscribe();
        // The sender lives as long as `self`, so `wait_for` only ends when the condition holds.
        let _ = receiver.wait_for(|requested| requested.cancel == Some(CancelMode::Immediate)).await;
    }

    /// Completes when the run may go on (resumed) or must stop (cancelled); returns the
    /// cancellation if that is why.
    pub(crate) async fn resumed_or_cancelled(&self) -> Option<CancelMode> {
        let mut receiver = self.sender.subscribe();
        let result = receiver.wait_for(|requested| !requested.paused || requested.cancel.is_some()).await;
        result.ok().and_then(|requested| requested.cancel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn immediate_cancel_wins_and_wakes_waiters() {
        let control = RunControl::new();
        let waiter = tokio::spawn({
            let control = control.clone();
            async move { control.cancelled_immediately().await }
        });
        control.cancel(CancelMode::AfterStep);
        assert_eq!(control.cancel_requested(), Some(CancelMode::AfterStep));
        control.cancel(CancelMode::Immediate);
        control.cancel(CancelMode::AfterStep);
        assert_eq!(control.cancel_requested(), Some(CancelMode::Immediate));
        waiter.await.unwrap();
    }

    #[tokio::test]
    async fn a_paused_run_waits_for_resume_or_cancel() {
        let control = RunControl::new();
        control.pause();
        let waiter = tokio::spawn({
            let control = control.clone();
            async move { control.resumed_or_cancelled().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        control.resume();
        assert_eq!(waiter.await.unwrap(), None);
        control.pause();
        control.cancel(CancelMode::Immediate);
        assert_eq!(control.resumed_or_cancelled().await, Some(CancelMode::Immediate));
    }
}
