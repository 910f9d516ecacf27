//! A connection's queue of live frames: bounded, one producer (the hub) and one consumer
//! (the connection's writer). Unlike a channel it allocates nothing until the first frame
//! arrives, so an idle connection holds only the queue's header (a channel allocates a
//! block of 32 slots up front).

use super::Frame;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

struct Inner {
    frames: VecDeque<Frame>,
    /// The consumer waiting for a frame.
    waker: Option<Waker>,
    /// The other side is gone.
    closed: bool,
}

struct Shared {
    cap: usize,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Nothing here panics while holding the lock; a poisoned one is still consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the queue closed and wakes the consumer.
    fn close(&self) {
        let waker = {
            let mut inner = self.lock();
            inner.closed = true;
            inner.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The hub's end.
pub struct FrameSender(Arc<Shared>);

/// The writer's end.
pub struct FrameReceiver(Arc<Shared>);

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The queue holds its bound: the consumer is too slow.
    Full,
    /// The consumer is gone.
    Closed,
}

/// A queue bounded to `cap` frames (at least 1).
pub fn frame_queue(cap: usize) -> (FrameSender, FrameReceiver) {
    let shared = Arc::new(Shared {
        cap: cap.max(1),
        inner: Mutex::new(Inner {
            frames: VecDeque::new(),
            waker: None,
            closed: false,
        }),
    });
    (FrameSender(shared.clone()), FrameReceiver(shared))
}

impl FrameSender {
    /// Queues `frame` and wakes the consumer, unless the queue is full or closed.
    pub fn try_send(&self, frame: Frame) -> Result<(), Refused> {
        let waker = {
            let mut inner = self.0.lock();
            if inner.closed {
                return Err(Refused::Closed);
            }
            if inner.frames.len() >= self.0.cap {
                return Err(Refused::Full);
            }
            inner.frames.push_back(frame);
            inner.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }
}

impl Drop for FrameSender {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl FrameReceiver {
    /// The next frame; `None` once the sender is gone and the queue is empty. Pending
    /// registers `cx`'s waker for the next frame.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
        let mut inner = self.0.lock();
        if let Some(frame) = inner.frames.pop_front() {
            return Poll::Ready(Some(frame));
        }
        if inner.closed {
            return Poll::Ready(None);
        }
        if !inner
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            inner.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// The next frame if one is waiting.
    pub fn try_recv(&mut self) -> Option<Frame> {
        self.0.lock().frames.pop_front()
    }
}

impl Drop for FrameReceiver {
    fn drop(&mut self) {
        // Frames left behind go now, not when the hub next routes to this connection.
        let frames = {
            let mut inner = self.0.lock();
            inner.closed = true;
            std::mem::take(&mut inner.frames)
        };
        drop(frames);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytestring::ByteString;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    fn frame(seq: u64) -> Frame {
        Frame {
            seq,
            text: ByteString::from(format!("frame {seq}")),
        }
    }

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn frames_come_out_in_order_up_to_the_bound() {
        let (tx, mut rx) = frame_queue(2);
        assert_eq!(tx.try_send(frame(1)), Ok(()));
        assert_eq!(tx.try_send(frame(2)), Ok(()));
        assert_eq!(tx.try_send(frame(3)), Err(Refused::Full));
        assert_eq!(rx.try_recv().map(|f| f.seq), Some(1));
        assert_eq!(tx.try_send(frame(4)), Ok(()));
        assert_eq!(rx.try_recv().map(|f| f.seq), Some(2));
        assert_eq!(rx.try_recv().map(|f| f.seq), Some(4));
        assert!(rx.try_recv().is_none());
    }

    #[test]
    fn a_waiting_consumer_is_woken_by_a_frame_and_by_the_senders_end() {
        let (tx, mut rx) = frame_queue(4);
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(rx.poll_recv(&mut cx).is_pending());
        tx.try_send(frame(1)).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(matches!(rx.poll_recv(&mut cx), Poll::Ready(Some(f)) if f.seq == 1));
        assert!(rx.poll_recv(&mut cx).is_pending());
        tx.try_send(frame(2)).unwrap();
        drop(tx);
        // What was queued still comes out, then the end.
        assert!(matches!(rx.poll_recv(&mut cx), Poll::Ready(Some(f)) if f.seq == 2));
        assert!(matches!(rx.poll_recv(&mut cx), Poll::Ready(None)));
        assert!(count.0.load(Ordering::SeqCst) >= 2);
    }

    #[test]
    fn the_hub_learns_when_the_consumer_is_gone() {
        let (tx, rx) = frame_queue(4);
        tx.try_send(frame(1)).unwrap();
        drop(rx);
        assert_eq!(tx.try_send(frame(2)), Err(Refused::Closed));
    }

    #[test]
    fn an_idle_queue_allocates_no_slots() {
        let (_tx, rx) = frame_queue(256);
        assert_eq!(rx.0.lock().frames.capacity(), 0);
    }
}
