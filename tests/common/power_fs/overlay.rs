//! The unsynced state of one file: what was written to it (and how its size
//! changed) since its last fsync, held in memory over the backing file,
//! which keeps what was synced. Reads see the overlay, as they would see
//! the page cache; an fsync applies it to the backing file; a power cut
//! drops it.
//!
//! The overlay holds whole 4 KiB pages (a page first written is filled
//! from the backing file), not a copy of the file: redb writes many MB and
//! fsyncs on every commit, so only the pages a commit touched are held.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The overlay's granularity, the size of a page of the page cache.
pub const PAGE: u64 = 4096;

pub struct Overlay {
    /// The file's size as the layer shows it.
    size: u64,
    /// Bytes of the backing file from here on are not part of the file as
    /// the layer shows it (it was truncated below them since the last
    /// sync, or they are past the backing file's end): they read as zeros.
    /// Never above `size`.
    valid: u64,
    /// Whole pages by index, each `PAGE` bytes; bytes at or past `size`
    /// are zeros.
    pages: HashMap<u64, Box<[u8]>>,
}

impl Overlay {
    /// A clean overlay over a backing file of `backing_len` bytes.
    pub fn new(backing_len: u64) -> Self {
        Overlay {
            size: backing_len,
            valid: backing_len,
            pages: HashMap::new(),
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// How many pages hold unsynced data.
    pub fn dirty_pages(&self) -> u64 {
        self.pages.len() as u64
    }

    /// Whether applying it would change the backing file.
    pub fn is_dirty(&self, backing_len: u64) -> bool {
        !self.pages.is_empty() || self.size != backing_len || self.valid != backing_len
    }

    /// Up to `len` bytes from `offset`, as the layer shows the file.
    pub fn read(&self, backing: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let end = self.size.min(offset.saturating_add(len));
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut buf = vec![0; (end - offset) as usize];
        let from_backing = self.valid.min(end).saturating_sub(offset) as usize;
        read_fully(backing, &mut buf[..from_backing], offset)?;
        for index in offset / PAGE..=(end - 1) / PAGE {
            if let Some(page) = self.pages.get(&index) {
                let start = (index * PAGE).max(offset);
                let stop = ((index + 1) * PAGE).min(end);
                buf[(start - offset) as usize..(stop - offset) as usize].copy_from_slice(
                    &page[(start - index * PAGE) as usize..(stop - index * PAGE) as usize],
                );
            }
        }
        Ok(buf)
    }

    /// Writes `data` at `offset` into the overlay, growing the file if it
    /// ends past it.
    pub fn write(&mut self, backing: &File, offset: u64, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let end = offset + data.len() as u64;
        for index in offset / PAGE..=(end - 1) / PAGE {
            let page_start = index * PAGE;
            if !self.pages.contains_key(&index) {
                let mut page = vec![0; PAGE as usize].into_boxed_slice();
                let known = self.valid.min(page_start + PAGE).saturating_sub(page_start) as usize;
                read_fully(backing, &mut page[..known], page_start)?;
                self.pages.insert(index, page);
            }
            let page = self.pages.get_mut(&index).expect("just inserted");
            let start = page_start.max(offset);
            let stop = (page_start + PAGE).min(end);
            page[(start - page_start) as usize..(stop - page_start) as usize]
                .copy_from_slice(&data[(start - offset) as usize..(stop - offset) as usize]);
        }
        self.size = self.size.max(end);
        Ok(())
    }

    /// Sets the size, as `ftruncate` does: bytes past a smaller size are
    /// gone (and read as zeros if the file grows again).
    pub fn set_size(&mut self, size: u64) {
        if size < self.size {
            self.pages.retain(|index, _| index * PAGE < size);
            if let Some(page) = self.pages.get_mut(&(size / PAGE)) {
                page[(size % PAGE) as usize..].fill(0);
            }
            self.valid = self.valid.min(size);
        }
        self.size = size;
    }

    /// Applies the overlay to the backing file (not synced: the caller
    /// syncs it) and returns how many bytes it wrote.
    pub fn apply(&self, backing: &File) -> io::Result<u64> {
        if self.valid < backing.metadata()?.len() {
            backing.set_len(self.valid)?;
        }
        let mut written = 0;
        let mut pages: Vec<_> = self.pages.iter().collect();
        pages.sort_by_key(|(index, _)| **index);
        for (index, page) in pages {
            let start = index * PAGE;
            let len = PAGE.min(self.size - start) as usize;
            backing.write_all_at(&page[..len], start)?;
            written += len as u64;
        }
        backing.set_len(self.size)?;
        Ok(written)
    }
}

/// Fills `buf` from `offset` of `file`, leaving zeros past its end.
pub fn read_fully(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(buf, offset) {
            Ok(0) => break,
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
