export * from './codes.js';
export * from './raw.js';
export * from './v1.js';
