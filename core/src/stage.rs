//! One-item pipeline stages: a future started now and awaited later.
//!
//! The core has no threads, but a native source or storage does its work on other threads as
//! soon as its future is first polled. A stage polls such a future once ([`start`]), lets the
//! caller do something else, and later awaits it and takes its output ([`output`]); a future
//! that finishes in that first poll keeps its output in the [`MaybeDone`].

use std::future::Future;
use std::pin::Pin;

use futures::future::MaybeDone;

/// Polls `fut` once, so work it hands to another thread (a native store's read, a native
/// storage's write) starts now and proceeds while the caller does something else; the caller
/// awaits it later. A future that finishes here keeps its output for that later await.
pub(crate) async fn start<F: Future>(fut: Pin<&mut MaybeDone<F>>) {
    let _ = futures::poll!(fut);
}

/// Awaits a future [`start`]ed earlier and takes its output.
pub(crate) async fn output<F: Future>(mut fut: Pin<&mut MaybeDone<F>>) -> F::Output {
    fut.as_mut().await;
    fut.take_output().expect("a pipeline stage's output is taken once")
}

/// Awaits the stage in `slot`, if any, and takes its output.
pub(crate) async fn settle<F: Future>(slot: &mut Option<Pin<Box<MaybeDone<F>>>>) -> Option<F::Output> {
    match slot.take() {
        Some(mut stage) => Some(output(stage.as_mut()).await),
        None => None,
    }
}
