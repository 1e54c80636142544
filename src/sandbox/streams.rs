//! WASI stdout and stderr over an instance's `Session`: what the script prints is
//! captured under its caps. A cap that is hit turns into a trap, which ends the call at
//! once; the session remembers which cap it was, so the outcome names it. (stdin is
//! WASI's closed stream: a script reads nothing from the host that way.)

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use super::session::{Session, Stop};

/// How much the guest may write per call; the session copies, so any size works.
const WRITE_BUDGET: usize = 1 << 20;

/// Which of the two output streams an adapter feeds.
#[derive(Clone, Copy)]
enum Sink {
    Stdout,
    Stderr,
}

/// The guest's stdout or stderr.
#[derive(Clone)]
pub struct GuestOutput {
    session: Session,
    sink: Sink,
}

impl GuestOutput {
    /// The script's stdout.
    pub fn stdout(session: Session) -> Self {
        Self { session, sink: Sink::Stdout }
    }

    /// The script's stderr.
    pub fn stderr(session: Session) -> Self {
        Self { session, sink: Sink::Stderr }
    }

    fn put(&self, data: &[u8]) -> Result<(), Stop> {
        let mut state = self.session.lock();
        match self.sink {
            Sink::Stdout => state.write_stdout(data),
            Sink::Stderr => state.write_stderr(data),
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.put(&bytes).map_err(|stop| StreamError::trap(&stop.message()))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.put(buf).map(|()| buf.len()).map_err(std::io::Error::other))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
