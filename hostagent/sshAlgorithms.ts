import type { Algorithms } from 'ssh2';

/**
 * Transport algorithms both ends offer, fastest first. With ssh2's native binding AES-GCM runs on
 * AES-NI and is the cheapest authenticated cipher; chacha20-poly1305 is the fallback for CPUs without
 * it. Every cipher here is AEAD, so no separate MAC is computed.
 */
export const sshAlgorithms: Algorithms = {
  cipher: ['aes128-gcm@openssh.com', 'chacha20-poly1305@openssh.com', 'aes256-gcm@openssh.com'],
  serverHostKey: ['ssh-ed25519'],
  kex: ['curve25519-sha256', 'curve25519-sha256@libssh.org', 'ecdh-sha2-nistp256'],
  compress: ['none'],
};
