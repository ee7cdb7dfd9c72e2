//! What the session simulators in the tests share: a world that advances by steps of its own clock.

use std::time::{Duration, Instant};

/// A simulated world: its clock, and one step of it (deliver what is due, fire due timers, send).
pub(super) trait Stepped: Sized {
    fn now(&self) -> Instant;
    fn step(&mut self);

    /// Steps until `done` holds or `limit` of simulated time has passed; whether `done` held.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        let end = self.now() + limit;
        while self.now() < end {
            if done(self) {
                return true;
            }
            self.step();
        }
        done(self)
    }
}
