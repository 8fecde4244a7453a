//! A streaming, block-parallel xz decoder whose memory stays bounded.
//!
//! liblzma's own multi-threaded decoder holds whole decoded blocks per thread; with the
//! image server's files (`xz -T0 -6`: 24 MiB blocks, 8 MiB dictionary) that peaks well
//! above what a small machine should spend. [`ParallelXzDecoder`] parses the container
//! itself, hands each block to a worker thread, and bounds what the workers may decode
//! ahead of the reader.
//!
//! # Format
//! References are to *The .xz File Format*, version 1.2.1
//! (<https://tukaani.org/xz/xz-file-format.txt>):
//! - §2.1.1 Stream Header: magic `FD 37 7A 58 5A 00`, two flag bytes (the check type),
//!   their CRC32. Checked here.
//! - §3.1 Block Header: a size byte (`0x00` is the Index Indicator instead), flags, the
//!   optional Compressed and Uncompressed Sizes (§1.2 variable-length integers), filter
//!   flags, padding and a CRC32. Only the CRC32, the flags and the two sizes are read here;
//!   liblzma validates the filters when it decodes the block.
//! - §3.2–3.4 Compressed Data, Block Padding (to a multiple of 4), Check.
//! - §4 Index: indicator, record count, (Unpadded Size, Uncompressed Size) per block,
//!   padding, CRC32. It is read here and compared with the blocks actually decoded (count,
//!   sums and a CRC over the records, in order).
//! - §2.1.2 Stream Footer: CRC32, Backward Size (must equal the Index size), flags (must
//!   equal the header's), magic `YZ`.
//! - §2.2 Stream Padding: zero bytes, a multiple of 4, between or after concatenated
//!   streams. Any other trailing data is an error, as it is for `xz -d`.
//!
//! # How blocks are decoded
//! Blocks whose header stores the Compressed Size (`xz -T0`, or any threaded encoder, writes
//! both sizes in every block header) are read whole into memory by the calling thread and
//! queued for a pool of `threads` workers. A worker decodes its block with an ordinary
//! liblzma stream decoder fed a synthetic prefix: the 12-byte Stream Header, then the block
//! itself. liblzma thereby validates the block header's filters, the compressed and
//! uncompressed sizes the header declares, and the block's check (CRC32, CRC64, SHA-256 or
//! none); once every byte of the block has been consumed without error the block is
//! complete and verified (the check is the block's last field). No unsafe code is needed.
//!
//! Fallbacks, all sequential (one core):
//! - A stream whose *first* block header has no Compressed Size (single-threaded `xz`
//!   output): from that stream on, the rest of the input goes through liblzma's ordinary
//!   concatenated-stream decoder, fed first the bytes already consumed (the Stream Header
//!   and the block header), once every block queued before it has been delivered.
//! - A block too large to buffer (more than [`MAX_BUFFERED_BLOCK`] bytes compressed) is
//!   decoded in the calling thread straight from the input, once it reaches the head of the
//!   queue; reading resumes after it.
//! - A block without a Compressed Size *after* blocks that had one, in the same stream, is
//!   an error (`InvalidData`): its end can only be found by decoding it, and the stream's
//!   Index would then not match what a fresh decoder saw. No known encoder writes that.
//!
//! # Memory and ordering
//! Output comes out in block order. Per decoder, at most:
//! - `threads` blocks are being decoded at once, each holding its compressed bytes (the
//!   buffers are reused) and liblzma's state, mostly the LZMA2 dictionary (8 MiB for `-6`);
//! - the head block (the one being read) streams through at most [`HEAD_CHUNKS`] queued
//!   chunks of [`CHUNK`] bytes; the head worker waits when they are full;
//! - blocks decoded ahead of the head queue their output, and all of it together is at most
//!   `buffer_budget` bytes: an ahead worker waits until its chunk fits. The budget goes to
//!   the nearest blocks first: a block may only use what the nearer blocks still decoding
//!   ahead do not still need (their remaining output, from the sizes in their headers).
//!   The head block never waits for the budget, so there is no deadlock; when a block
//!   becomes the head, the chunks it buffered while ahead stay counted until the reader
//!   takes them;
//! - plus one chunk per worker being filled and one being read.
//!
//! Sizing: with a fast reader, the block after the head needs about half a block of budget
//! for two blocks to decode at full speed side by side (each extra thread needs about
//! as much again); a smaller budget still works, with less overlap. For `xz -T0 -6` files
//! (24 MiB blocks), 2 threads and a 12 MiB budget: 2 × (8 MiB dictionary + ~5 MiB
//! compressed block) + 12 MiB + ~2 MiB of chunks, about 40 MiB; a whole test process
//! measured 42 MB peak RSS, against ~126 MB for liblzma's threaded decoder. Compressed
//! blocks are held whole, so for incompressible data that part grows to ~24 MiB per
//! thread.
//!
//! Dropping the decoder stops the workers (each notices within one chunk of output) and
//! joins them.
//!
//! # The inner reader
//! The input is read only from the calling thread, in [`Read::read`]. Errors from it are
//! returned unchanged (same kind, same payload); the decoder is then failed and further
//! reads return an error of the same kind and message. [`ParallelXzDecoder::into_inner`]
//! returns the reader positioned right after the last byte the decoder consumed: after a
//! complete decode, the end of the input; mid-stream, after the last block that was read
//! (blocks ahead of the output have been consumed from the input already).

use std::collections::VecDeque;
use std::io::{self, BufRead, ErrorKind, Read};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use liblzma::stream::{Action, Status, Stream};

/// Size of the output chunks workers hand to the reader.
const CHUNK: usize = 256 << 10;
/// Chunks the head block may have queued (beyond those it buffered while it was ahead).
const HEAD_CHUNKS: usize = 4;
/// Blocks larger than this as stored are decoded sequentially, straight from the input,
/// rather than buffered (`xz -T0 -6` writes 24 MiB blocks, at most ~24 MiB stored).
pub const MAX_BUFFERED_BLOCK: u64 = 32 << 20;
/// Entries queued but not yet delivered. Memory is bounded by `threads` and the budget;
/// this only bounds bookkeeping when blocks are tiny.
const MAX_QUEUED: usize = 64;

const HEADER_MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0];
const FOOTER_MAGIC: [u8; 2] = *b"YZ";
const STREAM_HEADER_SIZE: usize = 12;
/// Size of the check field by check ID (§2.1.1.2; IDs without a defined check still have
/// a defined size).
const CHECK_SIZES: [u64; 16] = [0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64];
/// Largest value a variable-length integer may hold (§1.2).
const VLI_MAX: u64 = u64::MAX / 2;

/// A streaming xz decoder that decodes independent blocks on `threads` worker threads with
/// bounded memory. See the module documentation.
pub struct ParallelXzDecoder<R: BufRead> {
    input: Input<R>,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    threads: usize,
    /// Dispatched work not yet delivered, in output order.
    queue: VecDeque<Entry>,
    parse: Parse,
    /// The stream whose blocks are being read.
    stream: StreamInfo,
    /// Records of the blocks delivered since the last Index check.
    delivered: Summary,
    /// Streams seen so far.
    streams: u64,
    /// Blocks seen so far (the 1-based number of the last one, in messages).
    blocks: u64,
    /// Sequence number of the next job handed to the workers.
    next_job: u64,
    /// The chunk being read and the read position in it.
    current: Vec<u8>,
    pos: usize,
    /// Set once an error has been returned: every later read fails the same way.
    failed: Option<(ErrorKind, String)>,
    max_buffered_block: u64,
}

enum Input<R> {
    /// Container parsed here, blocks decoded by the workers.
    Blocks(R),
    /// liblzma's sequential decoder owns the rest of the input.
    Sequential(Box<Sequential<R>>),
    /// Only while switching from one to the other.
    Switching,
}

/// What the parser expects next from the input.
enum Parse {
    /// The first Stream Header.
    StreamHeader,
    /// A Block Header or the Index.
    Block,
    /// Stream Padding, another stream, or the end.
    AfterStream,
    /// A block queued for sequential decoding from the input: reading resumes once it has
    /// been delivered.
    InlineBlock,
    /// Switch to the sequential decoder, feeding it these bytes first, once the queue has
    /// been delivered.
    Sequential(Vec<u8>),
    End,
}

impl Parse {
    fn can_read(&self) -> bool {
        matches!(
            self,
            Parse::StreamHeader | Parse::Block | Parse::AfterStream
        )
    }
}

#[derive(Default)]
struct StreamInfo {
    header: [u8; STREAM_HEADER_SIZE],
    check_size: u64,
    blocks: u64,
}

enum Entry {
    /// A block decoded by a worker.
    Job { seq: u64, unpadded: u64 },
    /// A block decoded in the calling thread straight from the input.
    Inline(Box<InlineBlock>),
    /// The Index of stream `stream`: it must match the blocks delivered since the last one.
    IndexCheck { stream: u64, index: Summary },
}

/// Count, sums and a CRC32 over the (Unpadded Size, Uncompressed Size) records, in order.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
struct Summary {
    count: u64,
    unpadded: u64,
    uncompressed: u64,
    crc: u32,
}

impl Summary {
    fn add(&mut self, unpadded: u64, uncompressed: u64) {
        self.count += 1;
        self.unpadded = self.unpadded.wrapping_add(unpadded);
        self.uncompressed = self.uncompressed.wrapping_add(uncompressed);
        self.crc = crc32_update(self.crc, &unpadded.to_le_bytes());
        self.crc = crc32_update(self.crc, &uncompressed.to_le_bytes());
    }
}

// ---------------------------------------------------------------------------------------
// State shared with the workers.

struct Shared {
    inner: Mutex<Inner>,
    /// The reader waits here for the head block.
    reader: Condvar,
    /// Workers wait here for jobs and for room for their output.
    workers: Condvar,
    budget: usize,
}

struct Inner {
    jobs: VecDeque<Job>,
    /// Output of the jobs not yet delivered; `slots[0]` is job `head`.
    slots: VecDeque<Slot>,
    head: u64,
    /// Jobs dispatched whose worker has not finished decoding.
    decoding: usize,
    /// Bytes queued by blocks while they were ahead of the head and not yet taken.
    ahead: usize,
    /// Empty chunk buffers (capacity `CHUNK`) for reuse.
    free_chunks: Vec<Vec<u8>>,
    /// Compressed-block buffers for reuse.
    free_inputs: Vec<Vec<u8>>,
    shutdown: bool,
    worker_panicked: bool,
    #[cfg(test)]
    max_ahead: usize,
}

struct Job {
    seq: u64,
    /// 1-based block number, for messages.
    block: u64,
    stream_header: [u8; STREAM_HEADER_SIZE],
    /// Block Header, Compressed Data, Block Padding and Check.
    data: Vec<u8>,
}

#[derive(Default)]
struct Slot {
    /// The Uncompressed Size from the block header, if it has one.
    expected: Option<u64>,
    /// Bytes queued so far.
    produced: u64,
    chunks: VecDeque<Chunk>,
    /// Chunks queued while this block was the head (not counted in the budget).
    uncharged: usize,
    /// The block's uncompressed size, or why it failed.
    done: Option<Result<u64, (ErrorKind, String)>>,
}

struct Chunk {
    data: Vec<u8>,
    /// Counted in `Inner::ahead`.
    charged: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing holding the lock can panic half-way through an update, and a panicked
        // worker is reported through `worker_panicked`.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take_chunk_buffer(&self) -> Vec<u8> {
        self.lock()
            .free_chunks
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(CHUNK))
    }

    /// Queues a chunk of job `seq`'s output, waiting for room. `Err` when shutting down.
    ///
    /// The head block may queue up to [`HEAD_CHUNKS`] chunks. A block ahead of it may use
    /// the budget, nearest first: only what the nearer blocks still decoding ahead of it do
    /// not still need (their whole remaining output, or all of the budget if their size is
    /// unknown). Greedy use would let far blocks take the budget the next block needs, and
    /// leave the head decoding alone.
    fn push_chunk(&self, seq: u64, data: Vec<u8>) -> Result<(), Cancelled> {
        let mut g = self.lock();
        loop {
            if g.shutdown {
                return Err(Cancelled);
            }
            let inner = &mut *g;
            let distance = (seq - inner.head) as usize;
            if distance >= inner.slots.len() {
                return Err(Cancelled);
            }
            let room = if distance == 0 {
                inner.slots[0].uncharged < HEAD_CHUNKS
            } else {
                let reserved = inner
                    .slots
                    .range(1..distance)
                    .filter(|slot| slot.done.is_none())
                    .map(|slot| match slot.expected {
                        Some(size) => size.saturating_sub(slot.produced),
                        None => u64::MAX,
                    })
                    .fold(0u64, u64::saturating_add);
                (inner.ahead + data.len()) as u64 <= (self.budget as u64).saturating_sub(reserved)
            };
            if room {
                let charged = distance > 0;
                let slot = &mut inner.slots[distance];
                slot.produced += data.len() as u64;
                if charged {
                    inner.ahead += data.len();
                } else {
                    slot.uncharged += 1;
                }
                slot.chunks.push_back(Chunk { data, charged });
                #[cfg(test)]
                {
                    inner.max_ahead = inner.max_ahead.max(inner.ahead);
                }
                break;
            }
            g = self.workers.wait(g).unwrap_or_else(PoisonError::into_inner);
        }
        drop(g);
        self.reader.notify_one();
        Ok(())
    }
}

struct Cancelled;

/// Marks the pool as broken if a worker panics, so that the reader does not wait forever.
struct PanicGuard<'a>(&'a Shared);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.lock().worker_panicked = true;
            self.0.reader.notify_all();
        }
    }
}

fn worker(shared: Arc<Shared>) {
    let _guard = PanicGuard(&shared);
    loop {
        let mut job = {
            let mut g = shared.lock();
            loop {
                if g.shutdown {
                    return;
                }
                if let Some(job) = g.jobs.pop_front() {
                    break job;
                }
                g = shared
                    .workers
                    .wait(g)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let result = match decode_job(&shared, &job) {
            Ok(size) => Ok(size),
            Err(JobError::Cancelled) => return,
            Err(JobError::Failed(kind, msg)) => {
                Err((kind, format!("xz: block {}: {msg}", job.block)))
            }
        };
        job.data.clear();
        let mut g = shared.lock();
        g.decoding -= 1;
        g.free_inputs.push(std::mem::take(&mut job.data));
        let head = g.head;
        if let Some(slot) = g.slots.get_mut((job.seq - head) as usize) {
            slot.done = Some(result);
        }
        drop(g);
        shared.reader.notify_one();
    }
}

enum JobError {
    Cancelled,
    Failed(ErrorKind, String),
}

impl From<Cancelled> for JobError {
    fn from(_: Cancelled) -> Self {
        JobError::Cancelled
    }
}

impl From<liblzma::stream::Error> for JobError {
    fn from(e: liblzma::stream::Error) -> Self {
        let (kind, msg) = lzma_error(e);
        JobError::Failed(kind, msg.to_owned())
    }
}

/// Decodes one block into chunks queued on its slot; returns its uncompressed size.
fn decode_job(shared: &Shared, job: &Job) -> Result<u64, JobError> {
    let mut dec = BlockDecoder::new(&job.stream_header)?;
    let mut input = &job.data[..];
    let mut out = shared.take_chunk_buffer();
    loop {
        if out.len() == out.capacity() {
            shared.push_chunk(job.seq, std::mem::take(&mut out))?;
            out = shared.take_chunk_buffer();
        }
        let before = out.len();
        let used = dec.decode_vec(input, &mut out)?;
        input = &input[used..];
        if used == 0 && out.len() == before {
            break;
        }
    }
    dec.finish(job.data.len() as u64)
        .map_err(|msg| JobError::Failed(ErrorKind::InvalidData, msg))?;
    if out.is_empty() {
        shared.lock().free_chunks.push(out);
    } else {
        shared.push_chunk(job.seq, out)?;
    }
    Ok(dec.total_out())
}

// ---------------------------------------------------------------------------------------
// Decoding one block with liblzma.

/// liblzma's stream decoder, fed the Stream Header and then exactly one block. Once all of
/// the block has been consumed without an error, the block is complete and its check has
/// been verified: the check is its last field.
struct BlockDecoder {
    stream: Stream,
}

impl BlockDecoder {
    fn new(stream_header: &[u8; STREAM_HEADER_SIZE]) -> Result<Self, liblzma::stream::Error> {
        let mut stream = Stream::new_stream_decoder(u64::MAX, 0)?;
        stream.process(stream_header, &mut [], Action::Run)?;
        if stream.total_in() != STREAM_HEADER_SIZE as u64 {
            return Err(liblzma::stream::Error::Program);
        }
        Ok(BlockDecoder { stream })
    }

    /// Decodes from `input` into the spare capacity of `out`; returns the input used.
    fn decode_vec(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<usize, liblzma::stream::Error> {
        let before = self.stream.total_in();
        let status = self.stream.process_vec(input, out, Action::Run)?;
        Self::status(status)?;
        Ok((self.stream.total_in() - before) as usize)
    }

    /// Decodes from `input` into `out`; returns (input used, output written).
    fn decode(
        &mut self,
        input: &[u8],
        out: &mut [u8],
    ) -> Result<(usize, usize), liblzma::stream::Error> {
        let (in0, out0) = (self.stream.total_in(), self.stream.total_out());
        let status = self.stream.process(input, out, Action::Run)?;
        Self::status(status)?;
        Ok((
            (self.stream.total_in() - in0) as usize,
            (self.stream.total_out() - out0) as usize,
        ))
    }

    fn status(status: Status) -> Result<(), liblzma::stream::Error> {
        match status {
            // `MemNeeded` is LZMA_BUF_ERROR: no progress, which the callers detect.
            Status::Ok | Status::MemNeeded => Ok(()),
            // Neither an Index nor a check report was asked for.
            Status::StreamEnd | Status::GetCheck => Err(liblzma::stream::Error::Program),
        }
    }

    /// Confirms, once the decoder makes no more progress, that it consumed the whole block.
    fn finish(&self, block_size: u64) -> Result<(), String> {
        let used = self.stream.total_in() - STREAM_HEADER_SIZE as u64;
        if used == block_size {
            Ok(())
        } else {
            Err(format!(
                "data is corrupt (decoding stopped after {used} of {block_size} bytes)"
            ))
        }
    }

    fn total_out(&self) -> u64 {
        self.stream.total_out()
    }
}

fn lzma_error(e: liblzma::stream::Error) -> (ErrorKind, &'static str) {
    use liblzma::stream::Error as E;
    match e {
        E::Data => (
            ErrorKind::InvalidData,
            "data is corrupt (or does not match its check)",
        ),
        E::Format => (ErrorKind::InvalidData, "not in xz format"),
        E::Options => (
            ErrorKind::InvalidData,
            "unsupported filters or options in the block header",
        ),
        E::Mem | E::MemLimit => (ErrorKind::OutOfMemory, "cannot allocate memory"),
        E::NoCheck | E::UnsupportedCheck => (ErrorKind::InvalidData, "unsupported check type"),
        E::Program => (ErrorKind::Other, "internal decoder error"),
    }
}

/// A block too large to buffer, decoded in the calling thread from the input.
struct InlineBlock {
    dec: BlockDecoder,
    /// The Block Header, already read from the input.
    header: Vec<u8>,
    header_pos: usize,
    /// Bytes of the block still to be read from the input.
    remaining: u64,
    size: u64,
    block: u64,
    unpadded: u64,
}

impl InlineBlock {
    /// Reads decoded bytes; `Ok(0)` once the whole block has been decoded and verified.
    fn read<R: BufRead>(&mut self, r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
        let block = self.block;
        let err = |e| {
            let (kind, msg) = lzma_error(e);
            io::Error::new(kind, format!("xz: block {block}: {msg}"))
        };
        loop {
            let (used, written) = if self.header_pos < self.header.len() {
                let (used, written) = self
                    .dec
                    .decode(&self.header[self.header_pos..], buf)
                    .map_err(err)?;
                self.header_pos += used;
                (used, written)
            } else if self.remaining > 0 {
                let avail = match r.fill_buf() {
                    Ok(avail) => avail,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                if avail.is_empty() {
                    return Err(truncated(format!(
                        "block {block} ends after {} of {} bytes",
                        self.size - self.remaining,
                        self.size
                    )));
                }
                let n = avail
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                let (used, written) = self.dec.decode(&avail[..n], buf).map_err(err)?;
                r.consume(used);
                self.remaining -= used as u64;
                (used, written)
            } else {
                self.dec.decode(&[], buf).map_err(err)?
            };
            if written > 0 {
                return Ok(written);
            }
            if used == 0 {
                if self.header_pos < self.header.len() || self.remaining > 0 {
                    // Output space and input were both there: liblzma would have moved.
                    return Err(io::Error::new(
                        ErrorKind::InvalidData,
                        format!("xz: block {block}: data is corrupt (decoder stalled)"),
                    ));
                }
                self.dec.finish(self.size).map_err(|msg| {
                    io::Error::new(ErrorKind::InvalidData, format!("xz: block {block}: {msg}"))
                })?;
                return Ok(0);
            }
        }
    }
}

/// liblzma's concatenated-stream decoder for the rest of the input, fed `prefix` first.
struct Sequential<R> {
    dec: Stream,
    prefix: Vec<u8>,
    pos: usize,
    reader: R,
    done: bool,
}

impl<R: BufRead> Sequential<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let err = |e| {
            let (kind, msg) = lzma_error(e);
            io::Error::new(kind, format!("xz: {msg}"))
        };
        loop {
            if self.done {
                return Ok(0);
            }
            let (in0, out0) = (self.dec.total_in(), self.dec.total_out());
            let (status, eof);
            if self.pos < self.prefix.len() {
                eof = false;
                status = self
                    .dec
                    .process(&self.prefix[self.pos..], buf, Action::Run)
                    .map_err(err)?;
                self.pos += (self.dec.total_in() - in0) as usize;
            } else {
                let avail = match self.reader.fill_buf() {
                    Ok(avail) => avail,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                eof = avail.is_empty();
                let action = if eof { Action::Finish } else { Action::Run };
                status = self.dec.process(avail, buf, action).map_err(err)?;
                self.reader.consume((self.dec.total_in() - in0) as usize);
            }
            let used = self.dec.total_in() - in0;
            let written = (self.dec.total_out() - out0) as usize;
            if status == Status::StreamEnd {
                self.done = true;
            }
            if written > 0 || self.done {
                return Ok(written);
            }
            if eof {
                return Err(truncated("the input ends inside a stream".into()));
            }
            if used == 0 {
                return Err(io::Error::new(
                    ErrorKind::InvalidData,
                    "xz: data is corrupt (decoder stalled)",
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The reader side.

impl<R: BufRead> ParallelXzDecoder<R> {
    /// A decoder reading `inner`, with `threads` workers (at least 1) and `buffer_budget`
    /// bytes for output decoded ahead of the reader. Nothing is read until the first
    /// [`Read::read`]; the error is from starting the worker threads.
    pub fn new(inner: R, threads: usize, buffer_budget: usize) -> io::Result<Self> {
        let threads = threads.clamp(1, 64);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                jobs: VecDeque::new(),
                slots: VecDeque::new(),
                head: 0,
                decoding: 0,
                ahead: 0,
                free_chunks: Vec::new(),
                free_inputs: Vec::new(),
                shutdown: false,
                worker_panicked: false,
                #[cfg(test)]
                max_ahead: 0,
            }),
            reader: Condvar::new(),
            workers: Condvar::new(),
            budget: buffer_budget,
        });
        let mut decoder = ParallelXzDecoder {
            input: Input::Blocks(inner),
            shared,
            workers: Vec::with_capacity(threads),
            threads,
            queue: VecDeque::new(),
            parse: Parse::StreamHeader,
            stream: StreamInfo::default(),
            delivered: Summary::default(),
            streams: 0,
            blocks: 0,
            next_job: 0,
            current: Vec::new(),
            pos: 0,
            failed: None,
            max_buffered_block: MAX_BUFFERED_BLOCK,
        };
        for i in 0..threads {
            let shared = Arc::clone(&decoder.shared);
            let handle = std::thread::Builder::new()
                .name(format!("xz-decode-{i}"))
                .spawn(move || worker(shared))?;
            decoder.workers.push(handle);
        }
        Ok(decoder)
    }

    /// Stops the workers and returns the input, positioned right after the last byte the
    /// decoder consumed (see the module documentation). Decoded output not yet read is
    /// discarded.
    pub fn into_inner(mut self) -> R {
        self.stop_workers();
        match std::mem::replace(&mut self.input, Input::Switching) {
            Input::Blocks(r) => r,
            Input::Sequential(s) => s.reader,
            Input::Switching => unreachable!("the input is only taken while switching"),
        }
    }

    fn stop_workers(&mut self) {
        {
            let mut g = self.shared.lock();
            g.shutdown = true;
            g.jobs.clear();
        }
        self.shared.workers.notify_all();
        for handle in self.workers.drain(..) {
            // A worker that panicked has nothing left to clean up.
            let _ = handle.join();
        }
    }

    #[cfg(test)]
    fn max_ahead(&self) -> usize {
        self.shared.lock().max_ahead
    }

    #[cfg(test)]
    fn is_sequential(&self) -> bool {
        matches!(self.input, Input::Sequential(_))
    }

    fn read_inner(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(n) = super::take_buffered(&self.current, &mut self.pos, buf) {
                return Ok(n);
            }
            if let Input::Sequential(s) = &mut self.input {
                return s.read(buf);
            }
            self.fill_pipeline()?;
            let Some(entry) = self.queue.front_mut() else {
                match std::mem::replace(&mut self.parse, Parse::End) {
                    Parse::End => return Ok(0),
                    Parse::Sequential(prefix) => {
                        self.switch_to_sequential(prefix)?;
                        continue;
                    }
                    // The pipeline stops reading with an empty queue only at the end or at
                    // the switch to sequential decoding.
                    _ => return Err(io::Error::other("xz: internal error: stalled")),
                }
            };
            match entry {
                Entry::IndexCheck { stream, index } => {
                    if *index != self.delivered {
                        return Err(invalid(format!(
                            "xz: stream {stream}: the index does not match the blocks"
                        )));
                    }
                    self.delivered = Summary::default();
                    self.queue.pop_front();
                }
                Entry::Inline(block) => {
                    let Input::Blocks(r) = &mut self.input else {
                        unreachable!("inline blocks are read from the input")
                    };
                    let n = block.read(r, buf)?;
                    if n > 0 {
                        return Ok(n);
                    }
                    self.delivered.add(block.unpadded, block.dec.total_out());
                    self.queue.pop_front();
                    self.parse = Parse::Block;
                }
                &mut Entry::Job { seq, unpadded, .. } => match self.wait_head(seq)? {
                    Head::Chunk(chunk) => {
                        self.current = chunk;
                        self.pos = 0;
                    }
                    Head::Done(size) => {
                        self.delivered.add(unpadded, size);
                        self.queue.pop_front();
                    }
                    Head::Refill => {}
                },
            }
        }
    }

    /// Waits for the next chunk of job `seq`, the head, or its end, or for a worker to
    /// become free while more blocks can be read.
    fn wait_head(&mut self, seq: u64) -> io::Result<Head> {
        let can_read = self.parse.can_read() && self.queue.len() < MAX_QUEUED;
        let mut g = self.shared.lock();
        if self.current.capacity() == CHUNK {
            let mut old = std::mem::take(&mut self.current);
            old.clear();
            g.free_chunks.push(old);
        }
        self.pos = 0;
        debug_assert_eq!(g.head, seq);
        loop {
            if g.worker_panicked {
                return Err(io::Error::other("xz: a decoder thread panicked"));
            }
            let inner = &mut *g;
            let slot = inner.slots.front_mut().expect("the head job has a slot");
            if let Some(chunk) = slot.chunks.pop_front() {
                if chunk.charged {
                    inner.ahead -= chunk.data.len();
                } else {
                    slot.uncharged -= 1;
                }
                drop(g);
                self.shared.workers.notify_all();
                return Ok(Head::Chunk(chunk.data));
            }
            if let Some(done) = slot.done.take() {
                inner.slots.pop_front();
                inner.head += 1;
                drop(g);
                self.shared.workers.notify_all();
                return match done {
                    Ok(size) => Ok(Head::Done(size)),
                    Err((kind, msg)) => Err(io::Error::new(kind, msg)),
                };
            }
            if can_read && inner.decoding < self.threads {
                return Ok(Head::Refill);
            }
            g = self
                .shared
                .reader
                .wait(g)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Reads and dispatches blocks while a worker is free.
    fn fill_pipeline(&mut self) -> io::Result<()> {
        while self.parse.can_read()
            && self.queue.len() < MAX_QUEUED
            && self.shared.lock().decoding < self.threads
        {
            self.step()?;
        }
        Ok(())
    }

    /// Reads one element of the container.
    fn step(&mut self) -> io::Result<()> {
        let Input::Blocks(r) = &mut self.input else {
            unreachable!("the container is parsed only in block mode")
        };
        match self.parse {
            Parse::StreamHeader => {
                let mut header = [0; STREAM_HEADER_SIZE];
                let n = fill(r, &mut header)?;
                if n < header.len() {
                    return Err(truncated(if n == 0 {
                        "the input is empty".into()
                    } else {
                        "the input ends inside the stream header".into()
                    }));
                }
                self.begin_stream(header)
            }
            Parse::Block => self.read_block(),
            Parse::AfterStream => {
                let mut word = [0; 4];
                match fill(r, &mut word)? {
                    0 => {
                        self.parse = Parse::End;
                        return Ok(());
                    }
                    4 => {}
                    _ => {
                        return Err(invalid(format!(
                            "xz: unexpected data after stream {} (or truncated stream padding)",
                            self.streams
                        )));
                    }
                }
                if word == [0; 4] {
                    return Ok(()); // Stream Padding
                }
                if word != HEADER_MAGIC[..4] {
                    return Err(invalid(format!(
                        "xz: unexpected data after stream {}",
                        self.streams
                    )));
                }
                let mut header = [0; STREAM_HEADER_SIZE];
                header[..4].copy_from_slice(&word);
                if fill(r, &mut header[4..])? < STREAM_HEADER_SIZE - 4 {
                    return Err(truncated(format!(
                        "the input ends inside the header of stream {}",
                        self.streams + 1
                    )));
                }
                self.begin_stream(header)
            }
            _ => unreachable!("step is called only when the parser can read"),
        }
    }

    fn begin_stream(&mut self, header: [u8; STREAM_HEADER_SIZE]) -> io::Result<()> {
        self.streams += 1;
        let n = self.streams;
        if header[..6] != HEADER_MAGIC {
            return Err(invalid(if n == 1 {
                "xz: not in xz format (bad magic)".into()
            } else {
                format!("xz: stream {n}: bad header magic")
            }));
        }
        if crc32(&header[6..8]) != le32(&header[8..12]) {
            return Err(invalid(format!(
                "xz: stream {n}: the stream header is corrupt"
            )));
        }
        if header[6] != 0 || header[7] & 0xf0 != 0 {
            return Err(invalid(format!(
                "xz: stream {n}: unsupported stream flags (a newer xz format?)"
            )));
        }
        self.stream = StreamInfo {
            header,
            check_size: CHECK_SIZES[usize::from(header[7] & 0x0f)],
            blocks: 0,
        };
        self.parse = Parse::Block;
        Ok(())
    }

    fn read_block(&mut self) -> io::Result<()> {
        let Input::Blocks(r) = &mut self.input else {
            unreachable!("the container is parsed only in block mode")
        };
        let block = self.blocks + 1;
        let mut size_byte = [0];
        if fill(r, &mut size_byte)? == 0 {
            return Err(truncated(format!(
                "stream {} ends before its index",
                self.streams
            )));
        }
        if size_byte[0] == 0 {
            return self.read_index();
        }
        let header_size = (usize::from(size_byte[0]) + 1) * 4;
        let mut header = vec![0; header_size];
        header[0] = size_byte[0];
        if fill(r, &mut header[1..])? < header_size - 1 {
            return Err(truncated(format!(
                "the input ends inside the header of block {block}"
            )));
        }
        let sizes = parse_block_header(&header)
            .map_err(|msg| invalid(format!("xz: block {block}: {msg}")))?;
        let Some(compressed) = sizes.compressed else {
            if self.stream.blocks == 0 {
                // Sequential output (`xz -T1`): liblzma decodes the rest.
                let mut prefix = self.stream.header.to_vec();
                prefix.extend_from_slice(&header);
                self.parse = Parse::Sequential(prefix);
                return Ok(());
            }
            return Err(invalid(format!(
                "xz: block {block}: its header has no compressed size while earlier blocks \
                 of the stream had one; such mixed streams are not supported"
            )));
        };
        let unpadded = (header_size as u64)
            .checked_add(compressed)
            .and_then(|n| n.checked_add(self.stream.check_size))
            .filter(|&n| n <= VLI_MAX)
            .ok_or_else(|| invalid(format!("xz: block {block}: its size is out of range")))?;
        let size = unpadded.next_multiple_of(4);
        self.blocks = block;
        self.stream.blocks += 1;

        if size > self.max_buffered_block {
            let dec = BlockDecoder::new(&self.stream.header).map_err(|e| {
                let (kind, msg) = lzma_error(e);
                io::Error::new(kind, format!("xz: {msg}"))
            })?;
            self.queue.push_back(Entry::Inline(Box::new(InlineBlock {
                dec,
                remaining: size - header_size as u64,
                header,
                header_pos: 0,
                size,
                block,
                unpadded,
            })));
            self.parse = Parse::InlineBlock;
            return Ok(());
        }

        let mut data = self.shared.lock().free_inputs.pop().unwrap_or_default();
        data.clear();
        data.extend_from_slice(&header);
        data.resize(size as usize, 0);
        let got = fill(r, &mut data[header_size..])?;
        if got < data.len() - header_size {
            return Err(truncated(format!(
                "block {block} ends after {} of {size} bytes",
                header_size + got
            )));
        }
        let seq = self.next_job;
        self.next_job += 1;
        {
            let mut g = self.shared.lock();
            g.slots.push_back(Slot {
                expected: sizes.uncompressed,
                ..Slot::default()
            });
            g.jobs.push_back(Job {
                seq,
                block,
                stream_header: self.stream.header,
                data,
            });
            g.decoding += 1;
        }
        self.shared.workers.notify_all();
        self.queue.push_back(Entry::Job { seq, unpadded });
        Ok(())
    }

    /// Reads the Index (its indicator already read) and the Stream Footer.
    fn read_index(&mut self) -> io::Result<()> {
        let Input::Blocks(r) = &mut self.input else {
            unreachable!("the container is parsed only in block mode")
        };
        let n = self.streams;
        let corrupt = |what: &str| invalid(format!("xz: stream {n}: {what}"));
        let mut index = IndexReader {
            r,
            crc: crc32(&[0]),
            size: 1,
            stream: n,
        };
        let count = index.vli()?;
        if count != self.stream.blocks {
            return Err(corrupt("the index does not match the blocks"));
        }
        let mut summary = Summary::default();
        for _ in 0..count {
            let unpadded = index.vli()?;
            let uncompressed = index.vli()?;
            summary.add(unpadded, uncompressed);
        }
        while !index.size.is_multiple_of(4) {
            if index.byte()? != 0 {
                return Err(corrupt("the index is corrupt (non-zero padding)"));
            }
        }
        let crc = index.crc;
        let index_size = index.size + 4;
        let mut tail = [0; 4 + STREAM_HEADER_SIZE];
        if fill(r, &mut tail)? < tail.len() {
            return Err(truncated(format!(
                "stream {n} ends inside its index or footer"
            )));
        }
        if le32(&tail[..4]) != crc {
            return Err(corrupt("the index is corrupt"));
        }
        let footer = &tail[4..];
        if footer[10..] != FOOTER_MAGIC {
            return Err(corrupt("bad footer magic"));
        }
        if crc32(&footer[4..10]) != le32(&footer[..4]) {
            return Err(corrupt("the stream footer is corrupt"));
        }
        if footer[8..10] != self.stream.header[6..8] {
            return Err(corrupt("the stream header and footer flags differ"));
        }
        if (u64::from(le32(&footer[4..8])) + 1) * 4 != index_size {
            return Err(corrupt("the footer's index size does not match the index"));
        }
        self.queue.push_back(Entry::IndexCheck {
            stream: n,
            index: summary,
        });
        self.parse = Parse::AfterStream;
        Ok(())
    }

    fn switch_to_sequential(&mut self, prefix: Vec<u8>) -> io::Result<()> {
        let dec =
            Stream::new_stream_decoder(u64::MAX, liblzma::stream::CONCATENATED).map_err(|e| {
                let (kind, msg) = lzma_error(e);
                io::Error::new(kind, format!("xz: {msg}"))
            })?;
        let Input::Blocks(reader) = std::mem::replace(&mut self.input, Input::Switching) else {
            unreachable!("the switch happens once, from block mode")
        };
        self.input = Input::Sequential(Box::new(Sequential {
            dec,
            prefix,
            pos: 0,
            reader,
            done: false,
        }));
        // The workers are no longer needed.
        self.stop_workers();
        Ok(())
    }
}

enum Head {
    Chunk(Vec<u8>),
    Done(u64),
    Refill,
}

impl<R: BufRead> Read for ParallelXzDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some((kind, msg)) = &self.failed {
            return Err(io::Error::new(*kind, msg.clone()));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        self.read_inner(buf).inspect_err(|e| {
            self.failed = Some((e.kind(), e.to_string()));
            self.stop_workers();
        })
    }
}

impl<R: BufRead> Drop for ParallelXzDecoder<R> {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

// ---------------------------------------------------------------------------------------
// Container parsing helpers.

/// Sizes from a Block Header (§3.1).
struct BlockSizes {
    compressed: Option<u64>,
    uncompressed: Option<u64>,
}

fn parse_block_header(header: &[u8]) -> Result<BlockSizes, &'static str> {
    let (body, crc) = header.split_at(header.len() - 4);
    if crc32(body) != le32(crc) {
        return Err("the block header is corrupt");
    }
    let flags = body[1];
    if flags & 0x3c != 0 {
        return Err("unsupported block header flags (a newer xz format?)");
    }
    let mut rest = &body[2..];
    let compressed = if flags & 0x40 != 0 {
        let size = vli(&mut rest).ok_or("the block header is corrupt")?;
        if size == 0 {
            return Err("the block header is corrupt (compressed size 0)");
        }
        Some(size)
    } else {
        None
    };
    // liblzma checks the block against its uncompressed size, and the Index check does too.
    let uncompressed = if flags & 0x80 != 0 {
        Some(vli(&mut rest).ok_or("the block header is corrupt")?)
    } else {
        None
    };
    Ok(BlockSizes {
        compressed,
        uncompressed,
    })
}

/// Decodes a variable-length integer (§1.2) from the front of `buf`.
fn vli(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..9 {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        if i > 0 && byte == 0 {
            return None; // not the shortest encoding
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Reads the Index byte by byte, keeping its CRC32 and size.
struct IndexReader<'a, R> {
    r: &'a mut R,
    crc: u32,
    size: u64,
    stream: u64,
}

impl<R: BufRead> IndexReader<'_, R> {
    fn byte(&mut self) -> io::Result<u8> {
        let mut b = [0];
        if fill(self.r, &mut b)? == 0 {
            return Err(truncated(format!(
                "stream {} ends inside its index",
                self.stream
            )));
        }
        self.crc = crc32_update(self.crc, &b);
        self.size += 1;
        Ok(b[0])
    }

    fn vli(&mut self) -> io::Result<u64> {
        let mut bytes = [0; 9];
        for i in 0..9 {
            bytes[i] = self.byte()?;
            if bytes[i] & 0x80 == 0 {
                if let Some(v) = vli(&mut &bytes[..=i]) {
                    return Ok(v);
                }
                break;
            }
        }
        Err(invalid(format!(
            "xz: stream {}: the index is corrupt",
            self.stream
        )))
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read. Errors from the
/// input are returned unchanged (`Interrupted` is retried).
fn fill<R: BufRead>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let avail = match r.fill_buf() {
            Ok(avail) => avail,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            break;
        }
        let k = avail.len().min(buf.len() - n);
        buf[n..n + k].copy_from_slice(&avail[..k]);
        r.consume(k);
        n += k;
    }
    Ok(n)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, msg)
}

fn truncated(what: String) -> io::Error {
    io::Error::new(
        ErrorKind::UnexpectedEof,
        format!("xz: truncated input: {what}"),
    )
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

/// CRC32 as xz uses it (IEEE 802.3, reflected, polynomial 0xEDB88320).
const CRC32_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

fn crc32_update(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c = CRC32_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

fn crc32(data: &[u8]) -> u32 {
    crc32_update(0, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use liblzma::stream::{Check, MtStreamBuilder};
    use std::io::{Cursor, Write};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;

    /// Text-like data that compresses about 3:1.
    fn data(len: usize, seed: u64) -> Vec<u8> {
        const WORDS: [&str; 16] = [
            "usr",
            "lib",
            "python3",
            "share",
            "locale",
            "systemd",
            "the",
            "of",
            "and",
            "bin",
            "etc",
            "x86_64-linux-gnu",
            "so",
            "config",
            "README",
            "LC_MESSAGES",
        ];
        let mut x = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut v = Vec::with_capacity(len + 32);
        while v.len() < len {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let r = (x >> 33) as u32;
            if r.is_multiple_of(8) {
                v.extend_from_slice(&r.to_le_bytes());
            } else {
                v.extend_from_slice(WORDS[(r % 16) as usize].as_bytes());
                v.push(if r.is_multiple_of(5) { b'/' } else { b' ' });
            }
        }
        v.truncate(len);
        v
    }

    /// Multi-block stream with sizes in the block headers, as `xz -T0` writes.
    fn multi(data: &[u8], block: u64, preset: u32, check: Check) -> Vec<u8> {
        let stream = MtStreamBuilder::new()
            .threads(2)
            .block_size(block)
            .preset(preset)
            .check(check)
            .encoder()
            .unwrap();
        let mut enc = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    /// Single-block stream without sizes in the header, as `xz -T1` writes.
    fn single(data: &[u8], preset: u32) -> Vec<u8> {
        let mut enc = liblzma::write::XzEncoder::new(Vec::new(), preset);
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn decode(compressed: &[u8], threads: usize, budget: usize) -> io::Result<Vec<u8>> {
        let mut d = ParallelXzDecoder::new(Cursor::new(compressed), threads, budget)?;
        let mut out = Vec::new();
        d.read_to_end(&mut out)?;
        Ok(out)
    }

    /// Runs `f` on another thread and fails the test if it takes longer than `secs`.
    fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(secs))
            .expect("the decoder hung")
    }

    /// Block boundaries: offsets where each block starts and where the Index starts.
    fn block_offsets(c: &[u8]) -> (Vec<usize>, usize) {
        let backward = (le32(&c[c.len() - 8..]) as usize + 1) * 4;
        let index = c.len() - 12 - backward;
        let check = CHECK_SIZES[usize::from(c[7] & 0x0f)] as usize;
        let mut starts = vec![];
        let mut pos = 12;
        while pos < index {
            starts.push(pos);
            let hsize = (usize::from(c[pos]) + 1) * 4;
            let mut rest = &c[pos + 2..];
            let comp = vli(&mut rest).unwrap() as usize;
            pos += (hsize + comp + check).next_multiple_of(4);
        }
        assert_eq!(pos, index);
        (starts, index)
    }

    #[test]
    fn many_small_blocks_any_thread_count() {
        let d = data(3 * MIB, 1);
        let c = multi(&d, 64 * KIB as u64, 1, Check::Crc64);
        assert!(block_offsets(&c).0.len() >= 40);
        for threads in [1, 2, 4] {
            for budget in [0, 256 * KIB, 24 * MIB] {
                assert!(
                    decode(&c, threads, budget).unwrap() == d,
                    "threads {threads} budget {budget}"
                );
            }
        }
    }

    #[test]
    fn a_few_large_blocks() {
        // Blocks larger than a chunk, with a budget smaller than a block.
        let d = data(7 * MIB + 12345, 2);
        let c = multi(&d, 3 * MIB as u64, 0, Check::Crc64);
        assert_eq!(block_offsets(&c).0.len(), 3);
        for threads in [1, 2, 4] {
            assert!(decode(&c, threads, MIB).unwrap() == d);
        }
    }

    #[test]
    fn single_block_falls_back_to_sequential() {
        let d = data(MIB, 3);
        let c = single(&d, 6);
        let mut dec = ParallelXzDecoder::new(Cursor::new(&c), 2, 24 * MIB).unwrap();
        let mut out = Vec::new();
        dec.read_to_end(&mut out).unwrap();
        assert!(out == d);
        assert!(dec.is_sequential());
        assert_eq!(dec.into_inner().position(), c.len() as u64);
    }

    #[test]
    fn empty_streams() {
        for c in [multi(&[], 64 * KIB as u64, 6, Check::Crc64), single(&[], 6)] {
            assert_eq!(decode(&c, 2, MIB).unwrap(), b"");
        }
        let err = decode(&[], 2, MIB).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
    }

    #[test]
    fn concatenated_streams_and_padding() {
        let parts = [
            data(300 * KIB, 4),
            data(10, 5),
            data(200 * KIB, 6),
            data(0, 0),
        ];
        let mut c = multi(&parts[0], 64 * KIB as u64, 1, Check::Crc64);
        c.extend_from_slice(&[0; 4]);
        c.extend(multi(&parts[1], 64 * KIB as u64, 1, Check::Crc32));
        c.extend(multi(&parts[2], 32 * KIB as u64, 1, Check::None));
        c.extend_from_slice(&[0; 8]);
        c.extend(multi(&parts[3], 32 * KIB as u64, 1, Check::Sha256));
        c.extend_from_slice(&[0; 4]);
        let want = parts.concat();
        let mut dec = ParallelXzDecoder::new(Cursor::new(&c), 2, MIB).unwrap();
        let mut out = Vec::new();
        dec.read_to_end(&mut out).unwrap();
        assert!(out == want);
        assert!(!dec.is_sequential());
        assert_eq!(dec.into_inner().position(), c.len() as u64);

        // A single-threaded stream after multi-block ones: the rest is sequential.
        let mut c2 = multi(&parts[0], 64 * KIB as u64, 1, Check::Crc64);
        c2.extend(single(&parts[2], 1));
        c2.extend_from_slice(&[0; 4]);
        c2.extend(multi(&parts[1], 64 * KIB as u64, 1, Check::Crc64));
        let want2 = [&parts[0][..], &parts[2], &parts[1]].concat();
        let mut dec = ParallelXzDecoder::new(Cursor::new(&c2), 2, MIB).unwrap();
        let mut out = Vec::new();
        dec.read_to_end(&mut out).unwrap();
        assert!(out == want2);
        assert!(dec.is_sequential());

        // Padding that is not a multiple of 4, or anything else after a stream, is an error.
        for tail in [&[0u8; 3][..], &[0, 0, 0, 0, 1], b"garbage!"] {
            let mut bad = multi(&parts[1], 64 * KIB as u64, 1, Check::Crc64);
            bad.extend_from_slice(tail);
            let err = decode(&bad, 2, MIB).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
        }
    }

    #[test]
    fn check_types() {
        let d = data(500 * KIB, 7);
        for check in [Check::None, Check::Crc32, Check::Crc64, Check::Sha256] {
            let c = multi(&d, 64 * KIB as u64, 1, check);
            assert!(decode(&c, 2, MIB).unwrap() == d);
            // A corrupted check field is caught (except with no check).
            let (starts, index) = block_offsets(&c);
            let check_size = CHECK_SIZES[usize::from(c[7] & 0x0f)] as usize;
            let end_of_first = starts[1];
            if check_size > 0 {
                let mut bad = c.clone();
                bad[end_of_first - 1] ^= 1;
                let err = decode(&bad, 2, MIB).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidData);
                assert!(err.to_string().contains("xz: block 1:"), "{err}");
            }
            assert!(index > end_of_first);
        }
    }

    #[test]
    fn corrupted_bytes_are_errors_without_hanging() {
        let d = data(40 * KIB, 8);
        let c = multi(&d, 8 * KIB as u64, 1, Check::Crc64);
        within(120, move || {
            let positions = (0..c.len())
                .filter(|&i| i < 80 || i + 80 > c.len() || i % 13 == 0)
                .collect::<Vec<_>>();
            for i in positions {
                let mut bad = c.clone();
                bad[i] ^= 0x55;
                let result = decode(&bad, 2, 16 * KIB);
                assert!(result.is_err(), "corrupting byte {i} went unnoticed");
            }
        });
    }

    #[test]
    fn corruption_reports_the_block_after_delivering_earlier_ones() {
        let d = data(2 * MIB, 9);
        let mut c = multi(&d, 256 * KIB as u64, 1, Check::Crc64);
        let (starts, _) = block_offsets(&c);
        let mid = (starts[3] + starts[4]) / 2;
        c[mid] ^= 0xff;
        let mut dec = ParallelXzDecoder::new(Cursor::new(c), 2, MIB).unwrap();
        let mut out = Vec::new();
        let err = dec.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData);
        assert!(err.to_string().starts_with("xz: block 4: "), "{err}");
        assert!(out.len() >= 3 * 256 * KIB);
        assert!(d.starts_with(&out[..3 * 256 * KIB]));
        // The decoder stays failed.
        let again = dec.read(&mut [0; 10]).unwrap_err();
        assert_eq!(again.to_string(), err.to_string());
    }

    #[test]
    fn truncated_input_is_an_error() {
        let d = data(100 * KIB, 10);
        let c = multi(&d, 16 * KIB as u64, 1, Check::Crc64);
        let s = single(&d, 1);
        within(120, move || {
            for c in [c, s] {
                for cut in (0..c.len()).filter(|&i| i < 40 || i + 40 > c.len() || i % 17 == 0) {
                    let err = decode(&c[..cut], 2, 32 * KIB).unwrap_err();
                    assert!(
                        matches!(
                            err.kind(),
                            ErrorKind::UnexpectedEof | ErrorKind::InvalidData
                        ),
                        "cut {cut}: {err}"
                    );
                }
            }
        });
    }

    /// A reader that fails with a given error after `ok` bytes.
    struct Failing {
        data: Cursor<Vec<u8>>,
        ok: u64,
        fail_once: bool,
        failed: bool,
    }

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.fill_buf()?.len().min(buf.len());
            buf[..n].copy_from_slice(&self.fill_buf()?[..n]);
            self.consume(n);
            Ok(n)
        }
    }

    impl BufRead for Failing {
        fn fill_buf(&mut self) -> io::Result<&[u8]> {
            let pos = self.data.position();
            if pos >= self.ok && !(self.fail_once && self.failed) {
                self.failed = true;
                return Err(io::Error::new(
                    ErrorKind::ConnectionReset,
                    "injected failure",
                ));
            }
            let avail = self.data.fill_buf()?;
            let limit = if self.failed {
                avail.len()
            } else {
                avail.len().min((self.ok - pos) as usize)
            };
            Ok(&avail[..limit.min(1000)])
        }
        fn consume(&mut self, n: usize) {
            self.data.consume(n)
        }
    }

    #[test]
    fn input_errors_propagate_unchanged() {
        let d = data(600 * KIB, 11);
        for c in [multi(&d, 64 * KIB as u64, 1, Check::Crc64), single(&d, 1)] {
            for ok in [0, 5, 12, 100, c.len() as u64 / 2, c.len() as u64 - 20] {
                for fail_once in [false, true] {
                    let r = Failing {
                        data: Cursor::new(c.clone()),
                        ok,
                        fail_once,
                        failed: false,
                    };
                    let mut dec = ParallelXzDecoder::new(r, 2, MIB).unwrap();
                    let mut out = Vec::new();
                    let err = dec.read_to_end(&mut out).unwrap_err();
                    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
                    assert_eq!(err.to_string(), "injected failure");
                    assert!(d.starts_with(&out));
                    // Later reads fail the same way, even if the input recovered.
                    let again = dec.read(&mut [0; 100]).unwrap_err();
                    assert_eq!(again.kind(), ErrorKind::ConnectionReset);
                }
            }
        }
    }

    #[test]
    fn one_byte_reads_and_one_byte_input_buffer() {
        let d = data(150 * KIB, 12);
        let c = multi(&d, 16 * KIB as u64, 1, Check::Crc32);
        let s = single(&d, 1);
        for (c, threads) in [(&c, 1), (&c, 4), (&s, 2)] {
            let input = io::BufReader::with_capacity(1, Cursor::new(c));
            let mut dec = ParallelXzDecoder::new(input, threads, 64 * KIB).unwrap();
            let mut out = Vec::with_capacity(d.len());
            let mut byte = [0];
            loop {
                match dec.read(&mut byte).unwrap() {
                    0 => break,
                    _ => out.push(byte[0]),
                }
            }
            assert!(out == d);
            assert_eq!(dec.read(&mut byte).unwrap(), 0);
        }
    }

    #[test]
    fn blocks_too_large_to_buffer_are_decoded_inline() {
        let d = data(MIB, 13);
        let c = multi(&d, 128 * KIB as u64, 1, Check::Crc64);
        let (starts, _) = block_offsets(&c);
        // Every other block is "too large" with this limit.
        let limit = (starts[1] - starts[0]) as u64 - 1;
        for (threads, capacity) in [(2, 8 * KIB), (1, 1)] {
            let input = io::BufReader::with_capacity(capacity, Cursor::new(&c));
            let mut dec = ParallelXzDecoder::new(input, threads, MIB).unwrap();
            dec.max_buffered_block = limit;
            let mut out = Vec::new();
            dec.read_to_end(&mut out).unwrap();
            assert!(out == d);
        }
        let mut bad = c.clone();
        bad[(starts[0] + starts[1]) / 2] ^= 0x10;
        for input in [&bad[..], &c[..starts[1] - 3]] {
            let mut dec = ParallelXzDecoder::new(Cursor::new(input), 2, MIB).unwrap();
            dec.max_buffered_block = 0;
            let err = dec.read_to_end(&mut Vec::new()).unwrap_err();
            assert!(err.to_string().starts_with("xz: "), "{err}");
        }
    }

    #[test]
    fn mixed_and_mismatched_streams_are_errors() {
        let d = data(400 * KIB, 14);
        let m = multi(&d, 64 * KIB as u64, 1, Check::Crc64);
        let s = single(&d, 1);
        let (starts, index) = block_offsets(&m);

        // A block without sizes after blocks with sizes.
        let mut mixed = m[..index].to_vec();
        mixed.extend_from_slice(&s[12..]);
        let err = decode(&mixed, 2, MIB).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData);
        assert!(err.to_string().contains("mixed"), "{err}");

        // A block missing: the Index lists one more.
        let mut missing = m[..starts[2]].to_vec();
        missing.extend_from_slice(&m[starts[3]..]);
        let err = decode(&missing, 2, MIB).unwrap_err();
        assert!(err.to_string().contains("index"), "{err}");

        // Two blocks swapped: same count and sums, other order.
        let mut swapped = m[..starts[1]].to_vec();
        swapped.extend_from_slice(&m[starts[2]..starts[3]]);
        swapped.extend_from_slice(&m[starts[1]..starts[2]]);
        swapped.extend_from_slice(&m[starts[3]..]);
        let sizes = |i: usize| starts.get(i + 1).unwrap_or(&index) - starts[i];
        if sizes(1) != sizes(2) {
            let mut out = Vec::new();
            let mut dec = ParallelXzDecoder::new(Cursor::new(&swapped), 2, MIB).unwrap();
            let err = dec.read_to_end(&mut out).unwrap_err();
            assert!(err.to_string().contains("index"), "{err}");
        }

        let err = decode(b"not xz at all, just text", 2, MIB).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData);
    }

    #[test]
    fn dropping_mid_stream_is_prompt() {
        let d = data(8 * MIB, 15);
        let c = Arc::new(multi(&d, 512 * KIB as u64, 0, Check::Crc64));
        for (threads, budget, read) in [(2, 0, 0), (2, MIB, 1000), (4, 24 * MIB, 3 * MIB)] {
            let c = Arc::clone(&c);
            let elapsed = within(60, move || {
                let mut dec = ParallelXzDecoder::new(Cursor::new(&c[..]), threads, budget).unwrap();
                let mut buf = vec![0; read];
                dec.read_exact(&mut buf).unwrap();
                // Let the workers fill what they may and block.
                std::thread::sleep(Duration::from_millis(200));
                let start = Instant::now();
                drop(dec);
                start.elapsed()
            });
            assert!(elapsed < Duration::from_secs(2), "drop took {elapsed:?}");
        }
    }

    #[test]
    fn ahead_output_stays_within_the_budget() {
        let d = data(24 * MIB, 16);
        let c = multi(&d, 4 * MIB as u64, 0, Check::Crc64);
        assert_eq!(block_offsets(&c).0.len(), 6);
        let budget = 8 * MIB;
        let mut dec = ParallelXzDecoder::new(Cursor::new(&c), 4, budget).unwrap();
        let mut out = Vec::with_capacity(d.len());
        let mut buf = vec![0; 256 * KIB];
        let mut reads = 0;
        dec.read_exact(&mut buf).unwrap();
        out.extend_from_slice(&buf);
        // Give the workers time to fill the budget.
        std::thread::sleep(Duration::from_millis(500));
        loop {
            let n = dec.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            reads += 1;
            if reads % 4 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        assert!(out == d);
        let max = dec.max_ahead();
        assert!(max <= budget + CHUNK, "{max} bytes were buffered ahead");
        assert!(max >= budget / 2, "the workers never decoded ahead ({max})");
    }

    #[test]
    fn the_decoder_is_send() {
        fn is_send<T: Send>() {}
        is_send::<ParallelXzDecoder<io::BufReader<std::fs::File>>>();
    }

    #[test]
    fn vli_and_crc() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(vli(&mut &[0x7f][..]), Some(0x7f));
        assert_eq!(vli(&mut &[0x80, 0x01][..]), Some(0x80));
        assert_eq!(vli(&mut &[0x80, 0x00][..]), None);
        assert_eq!(vli(&mut &[0xff; 9][..]), None);
        assert_eq!(
            vli(&mut &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f][..]),
            Some(VLI_MAX)
        );
    }
}
