export { AuthService, type AuthOptions, type Session } from './auth-service.js';
export { hashPassword, verifyPassword, generatePassword } from './passwords.js';
