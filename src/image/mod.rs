//! Root filesystem images: what the server offers ([`catalog`]), getting the bytes and
//! proving them ([`http`], [`source`]), decompressing ([`decode`]), unpacking safely
//! ([`unpack`]) and repacking ([`repack`]), both under one rule for entry names
//! ([`tarpath`]); [`fetch`] runs them as one streaming pass for the commands.

pub mod catalog;
pub mod decode;
pub mod fetch;
pub mod http;
pub mod repack;
pub mod source;
pub mod tarpath;
#[cfg(unix)]
pub mod unpack;
pub mod xz;

/// Calls `each` with every entry of a tar archive and its name. A failed read becomes
/// `read_error(where, error)`, `where` saying how far the archive was read ("at its start",
/// "at its first entry", "after entry `NAME`").
pub fn for_each_entry<R: std::io::Read, E>(
    archive: &mut tar::Archive<R>,
    read_error: impl Fn(String, std::io::Error) -> E,
    mut each: impl FnMut(&mut tar::Entry<'_, R>, &str) -> Result<(), E>,
) -> Result<(), E> {
    let entries = archive
        .entries()
        .map_err(|e| read_error("at its start".to_owned(), e))?;
    let mut previous: Option<String> = None;
    for entry in entries {
        let mut entry = entry.map_err(|e| {
            let at = match &previous {
                Some(name) => format!("after entry `{name}`"),
                None => "at its first entry".to_owned(),
            };
            read_error(at, e)
        })?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        each(&mut entry, &name)?;
        previous = Some(name);
    }
    Ok(())
}

/// Copies into `out` what it can of `chunk` from `*pos` on, and moves `*pos` past it;
/// `None` when the chunk is used up and the reader needs the next one.
pub(crate) fn take_buffered(chunk: &[u8], pos: &mut usize, out: &mut [u8]) -> Option<usize> {
    let left = chunk.get(*pos..).filter(|l| !l.is_empty())?;
    let n = out.len().min(left.len());
    out[..n].copy_from_slice(&left[..n]);
    *pos += n;
    Some(n)
}

/// Joins the server's base URL and a path from its catalog. Paths may start with `/` or
/// contain `//` and `:`; they are kept as the server wrote them.
pub fn server_url(server: &str, path: &str) -> String {
    format!(
        "{}/{}",
        server.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_url() {
        assert_eq!(
            super::server_url("http://h:1/", "/images/a//b:c"),
            "http://h:1/images/a//b:c"
        );
        assert_eq!(
            super::server_url("http://h/x", "streams/v1/index.json"),
            "http://h/x/streams/v1/index.json"
        );
    }
}

/// What the tests of the readers and writers of images share.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::{self, Read};

    /// Serves `data` but fails with a caller-style error from byte `fail_at` on.
    pub struct FailingReader {
        pub data: Vec<u8>,
        pub pos: usize,
        pub fail_at: usize,
    }

    impl FailingReader {
        /// Serves `data` from its start, failing from byte `fail_at` on.
        pub fn new(data: Vec<u8>, fail_at: usize) -> FailingReader {
            FailingReader {
                data,
                pos: 0,
                fail_at,
            }
        }
    }

    impl Read for FailingReader {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.pos >= self.fail_at {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "sha256 mismatch: expected 0123, got 4567",
                ));
            }
            let end = self.data.len().min(self.fail_at).min(self.pos + buf.len());
            let n = end - self.pos;
            buf[..n].copy_from_slice(&self.data[self.pos..end]);
            self.pos = end;
            Ok(n)
        }
    }
}
