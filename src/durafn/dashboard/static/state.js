// What every page shares: the host's description (task hub, read-only, orchestrators).
export const state = { info: null };
