export * from './codes.js';
export * from './names.js';
export * from './raw.js';
export * from './v1.js';
