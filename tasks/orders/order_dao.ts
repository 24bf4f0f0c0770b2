/**
 * The orders DAO of the Python demos this project reproduces: table `pedido` with
 * `id serial primary key, cliente varchar(50) not null, descripcion text not null,
 * fecha_pedido date not null`, and insert / list / find by id / delete through the pool.
 *
 * Every method borrows a connection through the pool; called inside `pg.transaction()`, the
 * reentrant pool hands it the transaction's connection, so DAO calls join the transaction.
 *
 * @module
 */
import type { PostgresPool } from "../../adapters/postgres/mod.ts";

/** An order as stored. `fechaPedido` is the calendar date, `YYYY-MM-DD` (no time zone). */
export interface Order {
  /** Primary key, assigned by the database. */
  id: number;
  /** Customer name, at most 50 characters. */
  cliente: string;
  /** What was ordered. */
  descripcion: string;
  /** Order date, `YYYY-MM-DD`. */
  fechaPedido: string;
}

/** What {@link OrderDao.insert} needs: an order without its id. Date defaults to today. */
export type NewOrder = Omit<Order, "id" | "fechaPedido"> & { fechaPedido?: string };

/** Per-call options: an `AbortSignal` or a timeout cancels the statement on the server. */
export interface DaoCallOptions {
  /** Cancels the call (and its statement on the server). */
  signal?: AbortSignal;
  /** A timeout for the whole call (the wait for a connection plus the statement), in ms. */
  timeoutMs?: number;
}

/** Data access for orders over one pool. */
export class OrderDao {
  readonly #pg: PostgresPool;
  readonly #table: string;

  /**
   * @param pg the pool to borrow connections from
   * @param table table name, optionally schema-qualified (`"pedido"`, `"test_1.pedido"`)
   */
  constructor(pg: PostgresPool, table = "pedido") {
    if (!/^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$/i.test(table)) {
      throw new TypeError(`OrderDao: '${table}' is not a table name like pedido or schema.pedido`);
    }
    this.#pg = pg;
    this.#table = table;
  }

  /** The table this DAO works on. */
  get table(): string {
    return this.#table;
  }

  /** Creates the table if it is missing. */
  async ensureTable(): Promise<void> {
    await this.#pg.use((sql) =>
      sql`create table if not exists ${sql(this.#table)} (
        id serial primary key,
        cliente varchar(50) not null,
        descripcion text not null,
        fecha_pedido date not null
      )`
    );
  }

  /** Inserts an order and returns it with its id. */
  async insert(order: NewOrder, options?: DaoCallOptions): Promise<Order> {
    if (order.cliente.length > 50) {
      throw new RangeError(
        `OrderDao.insert: cliente has ${order.cliente.length} characters, at most 50 fit`,
      );
    }
    const fecha = order.fechaPedido ?? new Date().toISOString().slice(0, 10);
    const [row] = await this.#pg.use(
      (sql) =>
        sql<Order[]>`insert into ${sql(this.#table)} (cliente, descripcion, fecha_pedido)
        values (${order.cliente}, ${order.descripcion}, ${fecha}::date)
        returning id, cliente, descripcion, fecha_pedido::text as "fechaPedido"`,
      options,
    );
    return { ...row };
  }

  /** Lists orders by id, oldest first (at most `limit`, default 100). */
  async list(options?: DaoCallOptions & { limit?: number }): Promise<Order[]> {
    const { limit = 100, ...call } = options ?? {};
    const rows = await this.#pg.use(
      (sql) =>
        sql<Order[]>`select id, cliente, descripcion, fecha_pedido::text as "fechaPedido"
        from ${sql(this.#table)} order by id limit ${limit}`,
      call,
    );
    return rows.map((r) => ({ ...r }));
  }

  /** The order with this id, or `undefined`. */
  async findById(id: number, options?: DaoCallOptions): Promise<Order | undefined> {
    const [row] = await this.#pg.use(
      (sql) =>
        sql<Order[]>`select id, cliente, descripcion, fecha_pedido::text as "fechaPedido"
        from ${sql(this.#table)} where id = ${id}`,
      options,
    );
    return row ? { ...row } : undefined;
  }

  /** Deletes the order; true when it existed. */
  async delete(id: number, options?: DaoCallOptions): Promise<boolean> {
    const result = await this.#pg.use(
      (sql) => sql`delete from ${sql(this.#table)} where id = ${id}`,
      options,
    );
    return result.count === 1;
  }

  /** How many orders there are. */
  async count(options?: DaoCallOptions): Promise<number> {
    const [row] = await this.#pg.use(
      (sql) => sql<{ n: number }[]>`select count(*)::int as n from ${sql(this.#table)}`,
      options,
    );
    return row.n;
  }
}
