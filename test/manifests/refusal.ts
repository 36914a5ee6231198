import { expect } from 'vitest';
import { InvalidInputError } from '../../engine/errors/index.js';

/** The InvalidInputError `run` throws; fails the test when it throws nothing or something else. */
export function refusal(run: () => unknown): InvalidInputError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    return error as InvalidInputError;
  }
  throw new Error('expected the input to be refused');
}
