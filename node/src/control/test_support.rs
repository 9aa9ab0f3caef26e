//! A tiny state machine for the control plane's tests: it keeps every command with its index.

use super::ControlStateMachine;

/// Every applied command with its log index, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Journal {
    pub(crate) entries: Vec<(u64, Vec<u8>)>,
}

impl Journal {
    pub(crate) fn commands(&self) -> Vec<Vec<u8>> {
        self.entries.iter().map(|(_, command)| command.clone()).collect()
    }
}

impl ControlStateMachine for Journal {
    /// Replies with the number of commands applied so far, big-endian.
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        self.entries.push((index, command.to_vec()));
        (self.entries.len() as u64).to_be_bytes().to_vec()
    }

    fn snapshot(&self) -> Vec<u8> {
        postcard::to_allocvec(&self.entries).expect("encode journal")
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        self.entries = postcard::from_bytes(snapshot).map_err(|e| format!("journal snapshot: {e}"))?;
        Ok(())
    }
}
