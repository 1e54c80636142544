//! WASI stdio adapters over a run's `Channel`: fd 0 yields the host's replies, fd 1 feeds
//! the demultiplexer, fd 2 is captured. A cap that is hit turns into a trap, which ends
//! the run at once; the channel remembers which cap it was, so the outcome names it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wasmtime_wasi::cli::{IsTerminal, StdinStream, StdoutStream};
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

use super::channel::{Channel, ChannelState, Stop};

/// How much the guest may write per call; the channel copies, so any size works.
const WRITE_BUDGET: usize = 1 << 20;

fn limit_trap(stop: Stop) -> StreamError {
    StreamError::trap(&stop.message())
}

fn io_error(stop: Stop) -> std::io::Error {
    std::io::Error::other(stop.message())
}

/// Which of the two output streams an adapter feeds.
#[derive(Clone, Copy)]
enum Sink {
    Stdout,
    Stderr,
}

/// The guest's stdout or stderr.
#[derive(Clone)]
pub struct GuestOutput {
    channel: Channel,
    sink: Sink,
}

impl GuestOutput {
    /// fd 1: script output and protocol frames.
    pub fn stdout(channel: Channel) -> Self {
        Self { channel, sink: Sink::Stdout }
    }

    /// fd 2: script errors.
    pub fn stderr(channel: Channel) -> Self {
        Self { channel, sink: Sink::Stderr }
    }

    fn put(&self, data: &[u8]) -> Result<(), Stop> {
        let mut state: std::sync::MutexGuard<'_, ChannelState> = self.channel.lock();
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
        self.put(&bytes).map_err(limit_trap)
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
        Poll::Ready(self.put(buf).map(|()| buf.len()).map_err(io_error))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The guest's stdin: the host's replies, then end of file.
#[derive(Clone)]
pub struct GuestInput {
    channel: Channel,
}

impl GuestInput {
    /// fd 0 over `channel`.
    pub fn new(channel: Channel) -> Self {
        Self { channel }
    }
}

impl IsTerminal for GuestInput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdinStream for GuestInput {
    fn async_stream(&self) -> Box<dyn AsyncRead + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn InputStream> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl InputStream for GuestInput {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        let mut state = self.channel.lock();
        // A stopped instance must not go on, whatever the guest catches.
        if let Some(stop) = state.stopped() {
            return Err(limit_trap(stop));
        }
        let bytes = state.read_reply(size);
        drop(state);
        // An empty read would make the guest retry forever; nothing queued means the
        // guest read without asking, and that is the end of its input.
        if bytes.is_empty() { Err(StreamError::Closed) } else { Ok(Bytes::from(bytes)) }
    }
}

#[async_trait::async_trait]
impl Pollable for GuestInput {
    /// The guest reads fd 0 right after sending a request, and a read waits here first:
    /// this is where database requests are answered, asynchronously, so a slow query
    /// blocks only this guest and stays under the run's outer deadline.
    async fn ready(&mut self) {
        loop {
            let next = self.channel.lock().take_db_request();
            let Some((id, request, db)) = next else { break };
            let response = db.0.handle(request).await;
            self.channel.lock().answer_db(id, response);
        }
    }
}

impl AsyncRead for GuestInput {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let bytes = self.channel.lock().read_reply(buf.remaining());
        buf.put_slice(&bytes);
        Poll::Ready(Ok(()))
    }
}
