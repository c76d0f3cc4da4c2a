export * from './codes.js';
export * from './raw.js';
