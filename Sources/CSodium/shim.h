/*
 * libsodium for the state sync's authenticated encryption (docs/sync-protocol.md, Encryption):
 * its detached IETF ChaCha20-Poly1305 (RFC 8439) seals and opens a datagram in place, where
 * swift-crypto's ChaChaPoly allocates its output on every call. Only the initialisation and
 * that construction are imported; SeqwallSync's SyncCipher is the one place that calls them.
 */
#ifndef SEQWALL_CSODIUM_SHIM_H
#define SEQWALL_CSODIUM_SHIM_H

#include <sodium/core.h>
#include <sodium/crypto_aead_chacha20poly1305.h>

#endif
