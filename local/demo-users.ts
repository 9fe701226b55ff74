/** The demo users `npm start` and the tests sign in as: two tenants, an admin, and a member of both. */
export interface DemoUser {
  email: string;
  /** The Cognito `name` attribute: the display name others see. */
  name?: string;
  password: string;
  tenants: string[];
  admin?: boolean;
}

export const DEMO_PASSWORD = 'Demo-Passw0rd!';

export const DEMO_USERS: DemoUser[] = [
  { email: 'alice@acme.test', name: 'Alice Liddell', password: DEMO_PASSWORD, tenants: ['acme'] },
  { email: 'bob@acme.test', name: 'Bob Marley', password: DEMO_PASSWORD, tenants: ['acme'] },
  { email: 'dana@acme.test', name: 'Dana Scully', password: DEMO_PASSWORD, tenants: ['acme'], admin: true },
  { email: 'carol@globex.test', name: 'Carol Danvers', password: DEMO_PASSWORD, tenants: ['globex'] },
  { email: 'erin@both.test', name: 'Erin Brockovich', password: DEMO_PASSWORD, tenants: ['acme', 'globex'] },
];
