//! SA payloads (RFC 7296 §3.3): building our offers from the configuration, selecting one of the
//! peer's as a responder (§2.7), and checking as an initiator that the answer is one of ours.
//!
//! A responder takes the first proposal (in [`SelectionOrder`]) for which every transform type
//! has an acceptable transform, and answers with exactly one transform of each type. A proposal
//! carrying a transform type we do not understand is skipped (§3.3.6); unknown IDs of known
//! types simply never match.

use super::{Error, EspProposal, IkeProposal, SelectionOrder};
use crate::crypto::{Encr, IkeSuite, Integ, Prf};
use crate::wire::{
    EncrId, EsnId, IntegId, KeMethod, Proposal, ProtocolId, SecurityAssociation, Transform,
    TransformId,
};

/// The ESP AEADs the data plane implements (its `CipherSuite`, same names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EspSuite {
    /// ENCR_AES_GCM_16 with a 128-bit key (RFC 4106).
    Aes128Gcm16,
    /// ENCR_AES_GCM_16 with a 256-bit key.
    Aes256Gcm16,
    /// ENCR_CHACHA20_POLY1305 (RFC 7634).
    ChaCha20Poly1305,
}

impl EspSuite {
    /// Every suite, strongest first.
    pub const ALL: &'static [EspSuite] = &[
        EspSuite::Aes256Gcm16,
        EspSuite::Aes128Gcm16,
        EspSuite::ChaCha20Poly1305,
    ];

    /// The same cipher as an [`Encr`] (for its key lengths and wire IDs).
    pub fn encr(self) -> Encr {
        match self {
            EspSuite::Aes128Gcm16 => Encr::AesGcm16_128,
            EspSuite::Aes256Gcm16 => Encr::AesGcm16_256,
            EspSuite::ChaCha20Poly1305 => Encr::Chacha20Poly1305,
        }
    }

    /// From an ENCR transform and its Key Length.
    pub fn from_transform(id: EncrId, key_bits: Option<u16>) -> Option<EspSuite> {
        match Encr::from_transform(id, key_bits).ok()? {
            Encr::AesGcm16_128 => Some(EspSuite::Aes128Gcm16),
            Encr::AesGcm16_256 => Some(EspSuite::Aes256Gcm16),
            Encr::Chacha20Poly1305 => Some(EspSuite::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// Octets of keying material per direction: key, then the 4-octet salt.
    pub fn keymat_len(self) -> usize {
        self.encr().keymat_len()
    }

    fn transform(self) -> Transform {
        encr_transform(self.encr())
    }
}

fn encr_transform(e: Encr) -> Transform {
    match e.key_bits() {
        Some(bits) => Transform::with_key_length(TransformId::Encr(e.id()), bits),
        None => Transform::new(TransformId::Encr(e.id())),
    }
}

/// Proposal numbers start at 1 (§3.3.1).
fn number(index: usize) -> u8 {
    u8::try_from(index.saturating_add(1)).unwrap_or(u8::MAX)
}

/// Our IKE offer: one wire proposal per configured proposal, no SPI (initial IKE_SA_INIT).
pub(crate) fn ike_offer(proposals: &[IkeProposal]) -> SecurityAssociation {
    let proposals = proposals
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut transforms: Vec<Transform> =
                p.encr.iter().map(|&e| encr_transform(e)).collect();
            transforms.extend(
                p.prf
                    .iter()
                    .map(|f| Transform::new(TransformId::Prf(f.id()))),
            );
            transforms.extend(
                p.integ
                    .iter()
                    .map(|a| Transform::new(TransformId::Integ(a.id()))),
            );
            transforms.extend(p.ke.iter().map(|&k| Transform::new(TransformId::Ke(k))));
            Proposal {
                number: number(i),
                protocol: ProtocolId::Ike,
                spi: Vec::new(),
                transforms,
            }
        })
        .collect();
    SecurityAssociation { proposals }
}

/// Our ESP offer with our inbound SPI.
pub(crate) fn esp_offer(proposals: &[EspProposal], spi: u32) -> SecurityAssociation {
    let proposals = proposals
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut transforms: Vec<Transform> = p.suites.iter().map(|s| s.transform()).collect();
            transforms.extend(p.esn.iter().map(|&e| Transform::new(TransformId::Esn(e))));
            Proposal {
                number: number(i),
                protocol: ProtocolId::Esp,
                spi: spi.to_be_bytes().to_vec(),
                transforms,
            }
        })
        .collect();
    SecurityAssociation { proposals }
}

/// A negotiated IKE proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IkeChoice {
    pub number: u8,
    pub encr: Encr,
    pub integ: Option<Integ>,
    pub prf: Prf,
    pub ke: KeMethod,
}

impl IkeChoice {
    pub fn suite(&self) -> Result<IkeSuite, Error> {
        IkeSuite::new(self.encr, self.integ, self.prf).map_err(Error::Crypto)
    }

    /// The answer: one transform of each type.
    pub fn to_sa(self) -> SecurityAssociation {
        let mut transforms = vec![
            encr_transform(self.encr),
            Transform::new(TransformId::Prf(self.prf.id())),
        ];
        if let Some(integ) = self.integ {
            transforms.push(Transform::new(TransformId::Integ(integ.id())));
        }
        transforms.push(Transform::new(TransformId::Ke(self.ke)));
        SecurityAssociation {
            proposals: vec![Proposal {
                number: self.number,
                protocol: ProtocolId::Ike,
                spi: Vec::new(),
                transforms,
            }],
        }
    }
}

/// A negotiated ESP proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EspChoice {
    pub number: u8,
    pub suite: EspSuite,
    pub esn: bool,
    /// The SPI in the peer's proposal: the SPI of our outbound SA.
    pub peer_spi: u32,
}

impl EspChoice {
    /// The answer with our inbound SPI.
    pub fn to_sa(self, our_spi: u32) -> SecurityAssociation {
        let esn = if self.esn { EsnId::Esn } else { EsnId::NoEsn };
        SecurityAssociation {
            proposals: vec![Proposal {
                number: self.number,
                protocol: ProtocolId::Esp,
                spi: our_spi.to_be_bytes().to_vec(),
                transforms: vec![
                    self.suite.transform(),
                    Transform::new(TransformId::Esn(esn)),
                ],
            }],
        }
    }
}

/// A wire proposal's transforms, sorted by type, in the sender's order. `None` if it has a
/// transform type we do not understand (§3.3.6) or an additional key exchange other than NONE.
struct Offered {
    encr: Vec<Encr>,
    /// Integrity transforms, `None` standing for NONE.
    integ: Vec<Option<Integ>>,
    prf: Vec<Prf>,
    ke: Vec<KeMethod>,
    esn: Vec<bool>,
}

impl Offered {
    fn read(p: &Proposal) -> Option<Offered> {
        let mut o = Offered {
            encr: Vec::new(),
            integ: Vec::new(),
            prf: Vec::new(),
            ke: Vec::new(),
            esn: Vec::new(),
        };
        for t in &p.transforms {
            match t.id {
                TransformId::Encr(id) => {
                    if let Ok(e) = Encr::from_transform(id, t.key_length()) {
                        o.encr.push(e);
                    }
                }
                TransformId::Integ(id) => {
                    if let Ok(i) = Integ::from_id(id) {
                        o.integ.push(i);
                    }
                }
                TransformId::Prf(id) => {
                    if let Ok(f) = Prf::from_id(id) {
                        o.prf.push(f);
                    }
                }
                TransformId::Ke(k) => o.ke.push(k),
                TransformId::Esn(EsnId::NoEsn) => o.esn.push(false),
                TransformId::Esn(EsnId::Esn) => o.esn.push(true),
                TransformId::Esn(_) => {}
                TransformId::AddKe(_, KeMethod::None) => {}
                TransformId::AddKe(..) | TransformId::Unknown { .. } => return None,
            }
        }
        Some(o)
    }
}

/// The first of `theirs` that is in `ours`, in the order `order` prefers.
fn pick<T: PartialEq + Copy>(theirs: &[T], ours: &[T], order: SelectionOrder) -> Option<T> {
    match order {
        SelectionOrder::Peers => theirs.iter().copied().find(|t| ours.contains(t)),
        SelectionOrder::Ours => ours.iter().copied().find(|t| theirs.contains(t)),
    }
}

/// Every pair (their proposal, our proposal), in the order `order` prefers.
fn pairs<'a, A, B>(theirs: &'a [A], ours: &'a [B], order: SelectionOrder) -> Vec<(&'a A, &'a B)> {
    let mut out = Vec::new();
    match order {
        SelectionOrder::Peers => {
            for t in theirs {
                out.extend(ours.iter().map(|o| (t, o)));
            }
        }
        SelectionOrder::Ours => {
            for o in ours {
                out.extend(theirs.iter().map(|t| (t, o)));
            }
        }
    }
    out
}

/// Selects an IKE proposal from an initiator's SA payload. `initiator_ke` is the group of its KE
/// payload: preferred when acceptable, so that no INVALID_KE_PAYLOAD round trip is needed.
pub(crate) fn select_ike(
    offer: &SecurityAssociation,
    ours: &[IkeProposal],
    order: SelectionOrder,
    initiator_ke: KeMethod,
) -> Result<IkeChoice, Error> {
    for (theirs, mine) in pairs(&offer.proposals, ours, order) {
        if theirs.protocol != ProtocolId::Ike || !theirs.spi.is_empty() {
            continue;
        }
        let Some(o) = Offered::read(theirs) else {
            continue;
        };
        let Some(prf) = pick(&o.prf, &mine.prf, order) else {
            continue;
        };
        let ke = if o.ke.contains(&initiator_ke) && mine.ke.contains(&initiator_ke) {
            Some(initiator_ke)
        } else {
            pick(&o.ke, &mine.ke, order)
        };
        let Some(ke) = ke else {
            continue;
        };
        let encr_order: Vec<Encr> = match order {
            SelectionOrder::Peers => o.encr.clone(),
            SelectionOrder::Ours => mine.encr.clone(),
        };
        for encr in encr_order {
            if !o.encr.contains(&encr) || !mine.encr.contains(&encr) {
                continue;
            }
            let integ = if encr.is_aead() {
                // An AEAD needs no INTEG: fine if none or NONE was offered (§3.3).
                if o.integ.iter().all(Option::is_none) {
                    Some(None)
                } else {
                    None
                }
            } else {
                let theirs: Vec<Integ> = o.integ.iter().flatten().copied().collect();
                pick(&theirs, &mine.integ, order).map(Some)
            };
            if let Some(integ) = integ {
                return Ok(IkeChoice {
                    number: theirs.number,
                    encr,
                    integ,
                    prf,
                    ke,
                });
            }
        }
    }
    Err(Error::NoProposalChosen)
}

/// Checks the responder's SA payload: one proposal, one transform of each type, all of them in
/// the proposal of ours it names.
pub(crate) fn check_ike_answer(
    answer: &SecurityAssociation,
    ours: &[IkeProposal],
) -> Result<IkeChoice, Error> {
    let bad = |what| Err(Error::InvalidSyntax { what });
    let [p] = answer.proposals.as_slice() else {
        return bad("the responder's SA payload must hold exactly one proposal");
    };
    let Some(mine) = usize::from(p.number)
        .checked_sub(1)
        .and_then(|i| ours.get(i))
    else {
        return bad("the responder's proposal number is not one we sent");
    };
    if p.protocol != ProtocolId::Ike || !p.spi.is_empty() {
        return bad("the responder's proposal is not an IKE proposal without SPI");
    }
    let (mut encr, mut integ, mut prf, mut ke) = (None, None, None, None);
    for t in &p.transforms {
        let fresh = match t.id {
            TransformId::Encr(id) => {
                let e = Encr::from_transform(id, t.key_length()).ok();
                e.filter(|e| mine.encr.contains(e))
                    .map(|e| encr.replace(e).is_none())
            }
            TransformId::Integ(IntegId::None) => Some(integ.replace(None).is_none()),
            TransformId::Integ(id) => {
                let i = Integ::from_id(id).ok().flatten();
                i.filter(|i| mine.integ.contains(i))
                    .map(|i| integ.replace(Some(i)).is_none())
            }
            TransformId::Prf(id) => {
                let f = Prf::from_id(id).ok();
                f.filter(|f| mine.prf.contains(f))
                    .map(|f| prf.replace(f).is_none())
            }
            TransformId::Ke(k) => mine.ke.contains(&k).then(|| ke.replace(k).is_none()),
            TransformId::AddKe(_, KeMethod::None) => Some(true),
            _ => None,
        };
        match fresh {
            Some(true) => {}
            Some(false) => return bad("the responder chose two transforms of one type"),
            None => return bad("the responder chose a transform we did not offer"),
        }
    }
    let (Some(encr), Some(prf), Some(ke)) = (encr, prf, ke) else {
        return bad("the responder's proposal lacks a transform type");
    };
    let integ = integ.flatten();
    if encr.is_aead() == integ.is_some() {
        return bad("the responder's ENCR and INTEG do not fit together");
    }
    Ok(IkeChoice {
        number: p.number,
        encr,
        integ,
        prf,
        ke,
    })
}

fn esp_spi(p: &Proposal) -> Option<u32> {
    let bytes = <[u8; 4]>::try_from(p.spi.as_slice()).ok()?;
    Some(u32::from_be_bytes(bytes)).filter(|&spi| spi >= MIN_SPI)
}

/// SPIs 1–255 are reserved by IANA (RFC 4303 §2.1), 0 is never valid.
pub(crate) const MIN_SPI: u32 = 256;

/// Selects an ESP proposal from an initiator's SA payload (in IKE_AUTH: KE transforms, i.e. PFS,
/// are ignored there, §1.2). Only AEADs: an INTEG transform other than NONE cannot go with them.
pub(crate) fn select_esp(
    offer: &SecurityAssociation,
    ours: &[EspProposal],
    order: SelectionOrder,
) -> Result<EspChoice, Error> {
    for (theirs, mine) in pairs(&offer.proposals, ours, order) {
        if theirs.protocol != ProtocolId::Esp {
            continue;
        }
        let (Some(peer_spi), Some(o)) = (esp_spi(theirs), Offered::read(theirs)) else {
            continue;
        };
        if o.integ.iter().any(Option::is_some) && !o.integ.contains(&None) {
            continue;
        }
        let their_suites: Vec<EspSuite> = theirs
            .transforms
            .iter()
            .filter_map(|t| match t.id {
                TransformId::Encr(id) => EspSuite::from_transform(id, t.key_length()),
                _ => None,
            })
            .collect();
        let Some(suite) = pick(&their_suites, &mine.suites, order) else {
            continue;
        };
        // §3.3.3: ESN is mandatory in ESP proposals; a peer that leaves it out gets none.
        let their_esn = if o.esn.is_empty() { vec![false] } else { o.esn };
        let my_esn: Vec<bool> = mine.esn.iter().map(|e| *e == EsnId::Esn).collect();
        let Some(esn) = pick(&their_esn, &my_esn, order) else {
            continue;
        };
        return Ok(EspChoice {
            number: theirs.number,
            suite,
            esn,
            peer_spi,
        });
    }
    Err(Error::NoProposalChosen)
}

/// Checks the responder's ESP answer against what we offered.
pub(crate) fn check_esp_answer(
    answer: &SecurityAssociation,
    ours: &[EspProposal],
) -> Result<EspChoice, Error> {
    let bad = |what| Err(Error::InvalidSyntax { what });
    let [p] = answer.proposals.as_slice() else {
        return bad("the responder's ESP SA payload must hold exactly one proposal");
    };
    let Some(mine) = usize::from(p.number)
        .checked_sub(1)
        .and_then(|i| ours.get(i))
    else {
        return bad("the responder's ESP proposal number is not one we sent");
    };
    let Some(peer_spi) = esp_spi(p).filter(|_| p.protocol == ProtocolId::Esp) else {
        return bad("the responder's ESP proposal has no valid SPI");
    };
    let (mut suite, mut esn) = (None, None);
    for t in &p.transforms {
        let fresh = match t.id {
            TransformId::Encr(id) => EspSuite::from_transform(id, t.key_length())
                .filter(|s| mine.suites.contains(s))
                .map(|s| suite.replace(s).is_none()),
            TransformId::Esn(e @ (EsnId::NoEsn | EsnId::Esn)) => mine
                .esn
                .contains(&e)
                .then(|| esn.replace(e == EsnId::Esn).is_none()),
            TransformId::Integ(IntegId::None) => Some(true),
            _ => None,
        };
        match fresh {
            Some(true) => {}
            Some(false) => return bad("the responder chose two ESP transforms of one type"),
            None => return bad("the responder chose an ESP transform we did not offer"),
        }
    }
    let Some(suite) = suite else {
        return bad("the responder's ESP proposal has no cipher");
    };
    let esn = match esn {
        Some(esn) => esn,
        None if mine.esn.contains(&EsnId::NoEsn) => false,
        None => return bad("the responder's ESP proposal has no ESN transform"),
    };
    Ok(EspChoice {
        number: p.number,
        suite,
        esn,
        peer_spi,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ike_selection_prefers_the_initiators_group_and_checks_answers() {
        let initiator = vec![IkeProposal::aead(vec![
            KeMethod::Ecp256,
            KeMethod::Curve25519,
        ])];
        let offer = ike_offer(&initiator);
        let responder = vec![IkeProposal::aead(vec![
            KeMethod::Curve25519,
            KeMethod::Ecp256,
        ])];
        let c = select_ike(&offer, &responder, SelectionOrder::Ours, KeMethod::Ecp256).unwrap();
        assert_eq!(c.ke, KeMethod::Ecp256);
        assert_eq!(c.encr, Encr::AesGcm16_256);
        assert_eq!(check_ike_answer(&c.to_sa(), &initiator), Ok(c));
        let only31 = vec![IkeProposal::aead(vec![KeMethod::Curve25519])];
        let c = select_ike(&offer, &only31, SelectionOrder::Ours, KeMethod::Ecp256).unwrap();
        assert_eq!(c.ke, KeMethod::Curve25519);
        let only14 = vec![IkeProposal::aead(vec![KeMethod::Modp2048])];
        assert_eq!(
            select_ike(&offer, &only14, SelectionOrder::Ours, KeMethod::Ecp256),
            Err(Error::NoProposalChosen)
        );
        // An answer with a group we did not offer.
        let mut forged = c;
        forged.ke = KeMethod::Modp2048;
        assert!(check_ike_answer(&forged.to_sa(), &initiator).is_err());
    }

    #[test]
    fn cbc_needs_integrity() {
        let cbc = vec![IkeProposal {
            encr: vec![Encr::AesCbc256],
            integ: vec![Integ::HmacSha2_256_128],
            prf: vec![Prf::HmacSha2_256],
            ke: vec![KeMethod::Curve25519],
        }];
        let c = select_ike(
            &ike_offer(&cbc),
            &cbc,
            SelectionOrder::Peers,
            KeMethod::Curve25519,
        )
        .unwrap();
        assert_eq!(c.integ, Some(Integ::HmacSha2_256_128));
        assert_eq!(check_ike_answer(&c.to_sa(), &cbc), Ok(c));
    }

    #[test]
    fn esp_selection() {
        let initiator = vec![EspProposal {
            suites: vec![EspSuite::ChaCha20Poly1305, EspSuite::Aes128Gcm16],
            esn: vec![EsnId::Esn, EsnId::NoEsn],
        }];
        let offer = esp_offer(&initiator, 0x1234_5678);
        let responder = vec![EspProposal {
            suites: vec![EspSuite::Aes128Gcm16, EspSuite::ChaCha20Poly1305],
            esn: vec![EsnId::NoEsn, EsnId::Esn],
        }];
        let c = select_esp(&offer, &responder, SelectionOrder::Ours).unwrap();
        assert_eq!(
            (c.suite, c.esn, c.peer_spi),
            (EspSuite::Aes128Gcm16, false, 0x1234_5678)
        );
        let c = select_esp(&offer, &responder, SelectionOrder::Peers).unwrap();
        assert_eq!((c.suite, c.esn), (EspSuite::ChaCha20Poly1305, true));
        let back = check_esp_answer(&c.to_sa(0x9999), &initiator).unwrap();
        assert_eq!(back.peer_spi, 0x9999);
        assert_eq!(
            select_esp(&esp_offer(&initiator, 7), &responder, SelectionOrder::Ours),
            Err(Error::NoProposalChosen),
            "reserved SPI"
        );
    }
}
