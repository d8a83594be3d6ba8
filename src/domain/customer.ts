/** A customer as given at subscription creation: matched by id, email or phone, else created. */
export interface CustomerInput {
  readonly id?: string | null;
  readonly email?: string | null;
  readonly phone?: string | null;
  readonly firstName?: string | null;
  readonly lastName?: string | null;
}
