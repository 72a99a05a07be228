//! Admission of uploads: at most so many at once, and at most so many bytes
//! of them in flight, so that a burst queues at the client (503 with
//! `Retry-After`) instead of piling up in memory, sockets and the temp
//! area. An upload reserves its declared length (or the upload limit when
//! it declares none) before any byte is read, and gives it back when it
//! ends, accepted or not.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ImagesError;

/// Default most uploads received at once.
pub const DEFAULT_MAX_CONCURRENT_UPLOADS: usize = 64;
/// Default most bytes of uploads in flight: 2 GiB.
pub const DEFAULT_MAX_TEMP_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Seconds a refused client is asked to wait before trying again.
pub const RETRY_AFTER_SECS: u64 = 5;

/// The uploads being received, shared by every clone of the service.
#[derive(Debug, Clone)]
pub struct Admission {
    slots: Arc<Semaphore>,
    max_slots: usize,
    bytes_in_flight: Arc<AtomicU64>,
    max_bytes: u64,
}

/// One admitted upload: its slot and its reserved bytes, given back on drop.
#[derive(Debug)]
pub struct UploadTicket {
    _slot: OwnedSemaphorePermit,
    reserved: u64,
    bytes_in_flight: Arc<AtomicU64>,
}

impl Admission {
    /// Room for `max_uploads` at once and `max_bytes` in flight.
    pub fn new(max_uploads: usize, max_bytes: u64) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_uploads)),
            max_slots: max_uploads,
            bytes_in_flight: Arc::new(AtomicU64::new(0)),
            max_bytes,
        }
    }

    /// Admits an upload of `bytes`, or refuses it for now.
    ///
    /// # Errors
    /// [`ImagesError::Busy`] when every slot is taken or its bytes would
    /// pass the limit.
    pub fn admit(&self, bytes: u64) -> Result<UploadTicket, ImagesError> {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            return Err(ImagesError::Busy(format!(
                "{} uploads are already being received; try again shortly",
                self.max_slots
            )));
        };
        let reserved = self.bytes_in_flight.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
            now.checked_add(bytes).filter(|total| *total <= self.max_bytes)
        });
        if reserved.is_err() {
            return Err(ImagesError::Busy(format!(
                "uploads in flight already hold {} MiB of the {} MiB allowed; try again shortly",
                self.bytes_in_flight.load(Ordering::Acquire) / (1024 * 1024),
                self.max_bytes / (1024 * 1024)
            )));
        }
        Ok(UploadTicket { _slot: slot, reserved: bytes, bytes_in_flight: self.bytes_in_flight.clone() })
    }
}

impl Drop for UploadTicket {
    fn drop(&mut self) {
        self.bytes_in_flight.fetch_sub(self.reserved, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_bytes_are_limited_and_given_back() {
        let admission = Admission::new(2, 100);
        let a = admission.admit(60).expect("first");
        assert!(matches!(admission.admit(50), Err(ImagesError::Busy(_))), "over the bytes");
        let b = admission.admit(40).expect("exactly up to the bytes, and the refused one gave its slot back");
        assert!(matches!(admission.admit(0), Err(ImagesError::Busy(_))), "both slots taken");
        drop(a);
        let c = admission.admit(60).expect("a's slot and bytes are back");
        drop((b, c));
        admission.admit(100).expect("everything given back");
    }
}
