/** The demo users `npm start` and the tests sign in as: two tenants, an admin, and a member of both. */
export interface DemoUser {
  email: string;
  password: string;
  tenants: string[];
  admin?: boolean;
}

export const DEMO_PASSWORD = 'Demo-Passw0rd!';

export const DEMO_USERS: DemoUser[] = [
  { email: 'alice@acme.test', password: DEMO_PASSWORD, tenants: ['acme'] },
  { email: 'bob@acme.test', password: DEMO_PASSWORD, tenants: ['acme'] },
  { email: 'dana@acme.test', password: DEMO_PASSWORD, tenants: ['acme'], admin: true },
  { email: 'carol@globex.test', password: DEMO_PASSWORD, tenants: ['globex'] },
  { email: 'erin@both.test', password: DEMO_PASSWORD, tenants: ['acme', 'globex'] },
];
