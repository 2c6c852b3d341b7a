//! The sandbox lifecycle every backend shares:
//!
//! ```text
//! creating ──► running ──► pausing ──► paused ──► resuming ──► running
//!    │            │                                    │
//!    └────────────┴──► stopping ──► stopped ◄──────────┘ (from any state but stopped)
//! any state but stopped ──► error (with a reason) ──► stopping
//! ```
//!
//! An illegal transition is an error that names the current state, which the API turns into a
//! 409 ("sandbox is paused; resume it first").

use runtools_protocol::sandbox::SandboxState;

/// Something that happened to a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleEvent {
    /// The backend finished creating it.
    Started,
    /// A pause was requested.
    Pause,
    /// The backend finished pausing.
    Paused,
    /// A resume was requested.
    Resume,
    /// The backend finished resuming.
    Resumed,
    /// A delete was requested.
    Stop,
    /// The backend removed everything.
    Stopped,
    /// Something failed underneath.
    Fail,
}

/// The event is not allowed in the sandbox's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} a sandbox that is {current}{}", verb(*event), hint(*current, *event))]
pub struct IllegalTransition {
    pub current: SandboxState,
    pub event: LifecycleEvent,
}

fn verb(event: LifecycleEvent) -> &'static str {
    match event {
        LifecycleEvent::Started => "start",
        LifecycleEvent::Pause | LifecycleEvent::Paused => "pause",
        LifecycleEvent::Resume | LifecycleEvent::Resumed => "resume",
        LifecycleEvent::Stop | LifecycleEvent::Stopped => "stop",
        LifecycleEvent::Fail => "fail",
    }
}

fn hint(current: SandboxState, event: LifecycleEvent) -> &'static str {
    match (current, event) {
        (SandboxState::Paused, LifecycleEvent::Pause) => " already",
        (SandboxState::Paused, _) => "; resume it first",
        (SandboxState::Running, LifecycleEvent::Resume) => " (it is not paused)",
        (SandboxState::Stopped, _) => "; create a new one",
        (SandboxState::Creating | SandboxState::Pausing | SandboxState::Resuming | SandboxState::Stopping, _) => {
            "; wait for it to settle"
        }
        _ => "",
    }
}

/// The state after `event`, or why it cannot happen now.
pub fn transition(current: SandboxState, event: LifecycleEvent) -> Result<SandboxState, IllegalTransition> {
    use LifecycleEvent as E;
    use SandboxState as S;
    let next = match (current, event) {
        (S::Creating, E::Started) => S::Running,
        (S::Running, E::Pause) => S::Pausing,
        (S::Pausing, E::Paused) => S::Paused,
        (S::Paused, E::Resume) => S::Resuming,
        (S::Resuming, E::Resumed) => S::Running,
        (S::Stopping, E::Stopped) => S::Stopped,
        (S::Stopped, _) => return Err(IllegalTransition { current, event }),
        (_, E::Stop) => S::Stopping,
        (_, E::Fail) => S::Error,
        _ => return Err(IllegalTransition { current, event }),
    };
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use LifecycleEvent as E;
    use SandboxState as S;

    #[test]
    fn the_happy_path() {
        let mut state = S::Creating;
        for (event, expected) in [
            (E::Started, S::Running),
            (E::Pause, S::Pausing),
            (E::Paused, S::Paused),
            (E::Resume, S::Resuming),
            (E::Resumed, S::Running),
            (E::Stop, S::Stopping),
            (E::Stopped, S::Stopped),
        ] {
            state = transition(state, event).unwrap();
            assert_eq!(state, expected);
        }
    }

    #[test]
    fn illegal_transitions_name_the_current_state() {
        let error = transition(S::Paused, E::Pause).unwrap_err();
        assert_eq!(error.to_string(), "cannot pause a sandbox that is paused already");
        let error = transition(S::Running, E::Resume).unwrap_err();
        assert!(error.to_string().contains("running"), "{error}");
        let error = transition(S::Stopped, E::Stop).unwrap_err();
        assert!(error.to_string().contains("stopped"), "{error}");
    }

    #[test]
    fn every_live_state_can_stop_or_fail_and_stopped_is_final() {
        for state in S::ALL {
            let stop = transition(state, E::Stop);
            let fail = transition(state, E::Fail);
            if state == S::Stopped {
                assert!(stop.is_err() && fail.is_err());
            } else {
                assert_eq!(stop, Ok(S::Stopping));
                assert_eq!(fail, Ok(S::Error));
            }
        }
    }
}
