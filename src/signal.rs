//! A one-shot broadcast signal that is cheap to wait on in a hot loop.
//!
//! Sessions check the shutdown signals on every wake-up of their relay loop. A
//! `CancellationToken` future takes a lock on every poll; a [`Fired`] future takes one
//! when it first registers its waker and afterwards costs one atomic load per poll.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// A signal that fires once and stays fired.
#[derive(Debug, Default)]
pub struct Signal {
    fired: AtomicBool,
    waiters: Mutex<Waiters>,
}

#[derive(Debug, Default)]
struct Waiters {
    next_id: u64,
    wakers: HashMap<u64, Waker>,
}

impl Signal {
    /// A new, unfired signal.
    pub fn new() -> Arc<Signal> {
        Arc::new(Signal::default())
    }

    /// Fires the signal and wakes every waiter.
    pub fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        let wakers = std::mem::take(&mut self.lock().wakers);
        wakers.into_values().for_each(Waker::wake);
    }

    /// Whether the signal has fired.
    pub fn is_fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    /// A future that completes when the signal fires.
    pub fn fired(&self) -> Fired<'_> {
        Fired { signal: self, slot: None }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiters> {
        // Every critical section is a single map operation.
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Completes when its [`Signal`] fires.
#[derive(Debug)]
pub struct Fired<'a> {
    signal: &'a Signal,
    slot: Option<(u64, Waker)>,
}

impl Future for Fired<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.is_fired() {
            return Poll::Ready(());
        }
        if self.slot.as_ref().is_some_and(|(_, w)| w.will_wake(cx.waker())) {
            return Poll::Pending;
        }
        {
            let mut waiters = self.signal.lock();
            if let Some((old, _)) = self.slot.take() {
                waiters.wakers.remove(&old);
            }
            let id = waiters.next_id;
            waiters.next_id += 1;
            waiters.wakers.insert(id, cx.waker().clone());
            self.slot = Some((id, cx.waker().clone()));
        }
        // Fired between the first check and the registration: fire() may have taken
        // the map before our insert.
        if self.signal.is_fired() { Poll::Ready(()) } else { Poll::Pending }
    }
}

impl Drop for Fired<'_> {
    fn drop(&mut self) {
        if let Some((id, _)) = self.slot.take() {
            self.signal.lock().wakers.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_every_waiter_and_unregisters_on_drop() {
        let signal = Signal::new();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let s = signal.clone();
                tokio::spawn(async move { s.fired().await })
            })
            .collect();
        tokio::task::yield_now().await;
        {
            let dropped = signal.fired();
            drop(dropped);
        }
        signal.fire();
        for w in waiters {
            w.await.unwrap();
        }
        assert!(signal.lock().wakers.is_empty());
        // Already fired: completes at once.
        signal.fired().await;
    }
}
