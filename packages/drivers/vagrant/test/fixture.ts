/** The base box every test here starts from: the same recipe as the base-box test, so one cached box serves them all. */
export const BASE_SOURCE = { debootstrap: { suite: "bookworm", variant: "minbase" as const, include: ["python3"] } };
