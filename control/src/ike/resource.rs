//! Per-resource Child SAs (RFC 9611): several Child SAs with the same traffic selectors, one
//! per resource (a CPU), so that no two resources share an outbound sequence counter.
//!
//! ```text
//! the fallback (IKE_AUTH or CREATE_CHILD_SA):
//!   request:  N(SA_RESOURCE_INFO), SA, [Ni,] TSi, TSr        (we support it)
//!   response: N(SA_RESOURCE_INFO), SA, [Nr,] TSi, TSr        (so does the peer)
//! one per resource (CREATE_CHILD_SA), the fallback's selectors:
//!   request:  N(SA_RESOURCE_INFO(resource)), SA, Ni, TSi, TSr
//!   response: N(SA_RESOURCE_INFO), SA, Nr, TSi, TSr
//!         or: N(TS_MAX_QUEUE)                               (no more: ask no further)
//! rekey of either: N(REKEY_SA), N(SA_RESOURCE_INFO), …       (the resource stays)
//! ```
//! The first Child SA of a child of the connection is the fallback, used for a resource that
//! has no Child SA of its own. The notification's data (a Resource Identifier) means something
//! to its sender only: we send the resource index as 4 octets and never read the peer's, so
//! any data is fine. Only the side that created the fallback learns whether the peer supports
//! per-resource Child SAs, so only it asks for them: the two sides never both make a set.

use super::established::ChildSa;
use super::payloads::notify;
use super::Error;
use crate::wire::{Notify, NotifyType, Payload};

/// SA_RESOURCE_INFO, with `resource` as its Resource Identifier (none for the fallback).
pub(crate) fn info(resource: Option<u32>) -> Payload {
    let data = resource
        .map(|r| r.to_be_bytes().to_vec())
        .unwrap_or_default();
    Payload::Notify(Notify::new(NotifyType::SaResourceInfo, data))
}

/// Whether `payloads` carry SA_RESOURCE_INFO (with whatever data, SPI or protocol).
pub(crate) fn present(payloads: &[Payload]) -> bool {
    notify(payloads, NotifyType::SaResourceInfo).is_some()
}

/// The resource a responder gives a new Child SA of child `config` whose request carried
/// SA_RESOURCE_INFO, beside `children`: none if it is the first of its child (the fallback),
/// else the lowest index not in use; past `limit` resources, [`Error::TooManyResourceSas`]
/// (TS_MAX_QUEUE).
pub(crate) fn assign(
    children: &[ChildSa],
    config: usize,
    limit: u32,
) -> Result<Option<u32>, Error> {
    let mut siblings = children.iter().filter(|c| c.config == config).peekable();
    if siblings.peek().is_none() {
        return Ok(None);
    }
    // A rekeyed pair and its successor share their resource: count it once.
    let mut used: Vec<u32> = siblings.filter_map(|c| c.resource).collect();
    used.sort_unstable();
    used.dedup();
    if !u32::try_from(used.len()).is_ok_and(|n| n < limit) {
        return Err(Error::TooManyResourceSas { limit });
    }
    // `used` is sorted and distinct: the first index that is not its own position is free.
    let free = (0..limit)
        .zip(
            used.iter()
                .copied()
                .map(Some)
                .chain(std::iter::repeat(None)),
        )
        .find(|(i, u)| Some(*i) != *u)
        .map(|(i, _)| i);
    Ok(free)
}

/// What the peer said about per-resource Child SAs of each child of the connection. Carried
/// over to the successor of an IKE SA rekey.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PeerResources {
    /// Children whose fallback we asked for with SA_RESOURCE_INFO and the peer answered with
    /// it too.
    supported: Vec<usize>,
    /// Children for which the peer answered TS_MAX_QUEUE: we ask no more.
    full: Vec<usize>,
}

impl PeerResources {
    /// Whether the peer supports per-resource Child SAs of child `config`.
    pub(crate) fn supports(&self, config: usize) -> bool {
        self.supported.contains(&config)
    }

    /// The peer answered our fallback of child `config` with SA_RESOURCE_INFO.
    pub(crate) fn set_supported(&mut self, config: usize) {
        if !self.supported.contains(&config) {
            self.supported.push(config);
        }
    }

    /// Whether the peer refused more Child SAs of child `config` (TS_MAX_QUEUE).
    pub(crate) fn is_full(&self, config: usize) -> bool {
        self.full.contains(&config)
    }

    /// The peer answered TS_MAX_QUEUE to a per-resource Child SA of child `config`.
    pub(crate) fn set_full(&mut self, config: usize) {
        if !self.full.contains(&config) {
            self.full.push(config);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::{EspSuite, Mode};

    fn child(config: usize, resource: Option<u32>) -> ChildSa {
        ChildSa {
            inbound_spi: 0x1000,
            outbound_spi: 0x2000,
            suite: EspSuite::Aes128Gcm16,
            esn: false,
            mode: Mode::Tunnel,
            local_ts: Vec::new(),
            remote_ts: Vec::new(),
            rekeyed: false,
            rekey_of: None,
            lowest_nonce: Vec::new(),
            config,
            resource,
        }
    }

    #[test]
    fn the_first_child_of_a_config_is_the_fallback() {
        assert_eq!(assign(&[], 0, 2), Ok(None));
        assert_eq!(assign(&[child(1, None)], 0, 2), Ok(None));
    }

    #[test]
    fn the_lowest_free_index_is_given_and_the_limit_answers_ts_max_queue() {
        let mut children = vec![child(0, None)];
        assert_eq!(assign(&children, 0, 3), Ok(Some(0)));
        children.push(child(0, Some(0)));
        children.push(child(0, Some(2)));
        assert_eq!(assign(&children, 0, 3), Ok(Some(1)));
        children.push(child(0, Some(1)));
        assert_eq!(
            assign(&children, 0, 3),
            Err(Error::TooManyResourceSas { limit: 3 })
        );
        // Another child's resources do not count.
        assert_eq!(assign(&children, 1, 3), Ok(None));
    }

    #[test]
    fn a_rekeyed_pair_and_its_successor_hold_one_resource() {
        let children = vec![child(0, None), child(0, Some(0)), child(0, Some(0))];
        assert_eq!(assign(&children, 0, 2), Ok(Some(1)));
    }

    #[test]
    fn indices_left_by_a_larger_limit_do_not_hide_free_ones() {
        // A peer's SAs from before a reload with a bigger count.
        let children = vec![child(0, None), child(0, Some(5)), child(0, Some(7))];
        assert_eq!(assign(&children, 0, 3), Ok(Some(0)));
        let full = vec![
            child(0, None),
            child(0, Some(5)),
            child(0, Some(7)),
            child(0, Some(9)),
        ];
        assert_eq!(
            assign(&full, 0, 3),
            Err(Error::TooManyResourceSas { limit: 3 })
        );
    }

    #[test]
    fn a_zero_limit_refuses_every_per_resource_child() {
        assert_eq!(
            assign(&[child(0, None)], 0, 0),
            Err(Error::TooManyResourceSas { limit: 0 })
        );
    }
}
