import { exactOrigin } from '../local/system';

// `npm start --allow-origin` and LocalSystemOptions.allowedOrigins: the handshake compares origins exactly, so
// anything but an origin as a browser sends it would silently allow nothing.
test.each(['http://localhost:5173', 'https://app.example.com', 'http://127.0.0.1:3000'])('accepts the origin %s', (origin) => {
  expect(exactOrigin(origin)).toBe(origin);
});

test.each(['localhost:5173', 'http://localhost:5173/', 'http://localhost:5173/app', 'ws://localhost:5173', 'null', '*', '', 'HTTP://LOCALHOST'])(
  'refuses %j with the form it expects',
  (value) => {
    expect(() => exactOrigin(value)).toThrow(`Not an origin: "${value}" (expected scheme://host[:port], as in http://localhost:5173)`);
  },
);
