// The domain's public surface: pure functions only, no I/O.
export * from './errors';
export * from './currency';
export * from './money';
export * from './period';
