/**
 * Delay before the next spawn after `failures` consecutive worker failures: the first respawn is
 * immediate, then 250 ms doubling up to 32 s, so a crash-looping app cannot burn the CPU.
 */
export function respawnDelayMs(failures: number): number {
  if (failures <= 1) return 0;
  return Math.min(32_000, 250 * 2 ** (failures - 2));
}
