package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"

	"github.com/chatdb/chatdb/schema/schematype"
)

// gormBatch is the batch size of the GORM stack's CreateInBatches, the same round
// thousand as the ent stack's chunks.
const gormBatch = entChunk

// GORM models of chatdb's tables. GORM's naming strategy maps the fields to the
// migrations' snake_case columns; the tables are chatdb's, so nothing here is
// auto-migrated. DeletedAt is a plain pointer rather than gorm.DeletedAt, which
// would add "deleted_at IS NULL" to every query the other stacks do not run.

type gormUser struct {
	ID          uuid.UUID `gorm:"primaryKey"`
	CreatedAt   time.Time
	UpdatedAt   time.Time
	DeletedAt   *time.Time
	Email       string
	DisplayName string
	Status      string
}

func (gormUser) TableName() string { return "users" }

type gormChat struct {
	ID            uuid.UUID `gorm:"primaryKey"`
	CreatedAt     time.Time
	UpdatedAt     time.Time
	DeletedAt     *time.Time
	Kind          string
	Title         *string
	LastMessageAt time.Time
	LastSeq       int64
	Large         bool
	ArchivedAt    *time.Time
	CreatedBy     uuid.UUID
}

func (gormChat) TableName() string { return "chats" }

type gormMembership struct {
	ID                uuid.UUID `gorm:"primaryKey"`
	UserID            uuid.UUID
	ChatID            uuid.UUID
	Role              string
	JoinedAt          time.Time
	ReadSeq           int64
	LastReadMessageID *uuid.UUID
	Muted             bool
	ChatLastMessageAt *time.Time
	Large             bool
}

func (gormMembership) TableName() string { return "memberships" }

type gormMessage struct {
	ID        uuid.UUID `gorm:"primaryKey"`
	ChatID    uuid.UUID
	Seq       int64
	SenderID  *uuid.UUID
	Role      string
	Content   string
	Metadata  *schematype.MessageMetadata
	ReplyToID *uuid.UUID
	CreatedAt time.Time
	EditedAt  *time.Time
	DeletedAt *time.Time
}

func (gormMessage) TableName() string { return "messages" }

// gormInboxRow is what the inbox query's rows scan into: GORM maps result
// columns to fields by name, so the statement's columns are renamed to match.
type gormInboxRow struct {
	ID                  uuid.UUID
	CreatedAt           time.Time
	UpdatedAt           time.Time
	DeletedAt           *time.Time
	Kind                string
	Title               *string
	CreatedBy           uuid.UUID
	LastMessageAt       time.Time
	LastSeq             int64
	ArchivedAt          *time.Time
	DirectKey           *string
	MbID                uuid.UUID
	MbRole              string
	MbJoinedAt          time.Time
	MbReadSeq           int64
	MbLastReadMessageID *uuid.UUID
	MbMuted             bool
	LmID                *uuid.UUID
	LmSeq               *int64
	LmSenderID          *uuid.UUID
	LmRole              *string
	LmContent           *string
	LmMetadata          *schematype.MessageMetadata
	LmReplyToID         *uuid.UUID
	LmCreatedAt         *time.Time
	LmEditedAt          *time.Time
	LmDeletedAt         *time.Time
	Unread              int64
}

// sqlInboxGorm is the inbox statement with its result columns named for
// gormInboxRow.
var sqlInboxGorm = questionPlaceholders(`SELECT * FROM (` + sqlInbox + `) AS inbox (id, created_at, updated_at,
  deleted_at, kind, title, created_by, last_message_at, last_seq, archived_at, direct_key,
  mb_id, mb_role, mb_joined_at, mb_read_seq, mb_last_read_message_id, mb_muted,
  lm_id, lm_seq, lm_sender_id, lm_role, lm_content, lm_metadata, lm_reply_to_id, lm_created_at, lm_edited_at, lm_deleted_at,
  unread)`)

// gormStack is GORM used the obvious way: its PostgreSQL driver (pgx's
// database/sql driver underneath), default configuration (so writes outside an
// explicit transaction get GORM's own), models for the tables, chained queries,
// Raw for the inbox, CreateInBatches for bulk loads. Only its logger is silenced.
// Writes that chatdb's schema ties together (a message, its seq and the
// chat's and memberships' bumps) are one Transaction, the chat's row locked
// first with clause.Locking.
type gormStack struct {
	db *gorm.DB
}

// OpenGorm opens the GORM stack.
func OpenGorm(ctx context.Context, url string) (Stack, error) {
	db, err := gorm.Open(postgres.Open(url), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return nil, fmt.Errorf("bench: gorm: %w", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("bench: gorm: %w", err)
	}
	sqlDB.SetMaxOpenConns(MaxOpen)
	sqlDB.SetMaxIdleConns(MaxIdle)
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("bench: gorm: %w", err)
	}
	return &gormStack{db: db}, nil
}

func (s *gormStack) Name() string { return "gorm" }

func (s *gormStack) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

func (s *gormStack) CloseIdle() {
	if sqlDB, err := s.db.DB(); err == nil {
		closeIdle(sqlDB)
	}
}

func (s *gormStack) GetUser(ctx context.Context, as, id uuid.UUID, got *User) error {
	var u gormUser
	if err := s.db.WithContext(ctx).First(&u, "id = ? AND deleted_at IS NULL AND EXISTS (SELECT 1 FROM users v WHERE v.id = ? AND v.deleted_at IS NULL)", id, as).Error; err != nil {
		return err
	}
	if got != nil {
		*got = User{ID: u.ID, Email: u.Email, DisplayName: u.DisplayName, Status: u.Status,
			CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt, DeletedAt: u.DeletedAt}
	}
	return nil
}

func (s *gormStack) AppendMessage(ctx context.Context, m *Message) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var c gormChat
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).First(&c, "id = ?", m.ChatID).Error; err != nil {
			return err
		}
		msg := gormMessage{ID: m.ID, ChatID: m.ChatID, Seq: c.LastSeq + 1, SenderID: m.SenderID, Role: m.Role,
			Content: m.Content, Metadata: m.Metadata, CreatedAt: laterOf(Now(), c.LastMessageAt)}
		if err := tx.Create(&msg).Error; err != nil {
			return err
		}
		err := tx.Model(&c).Updates(map[string]any{"last_seq": msg.Seq, "last_message_at": msg.CreatedAt, "updated_at": msg.CreatedAt}).Error
		if err != nil {
			return err
		}
		if err := fanOut(tx, c, msg.CreatedAt); err != nil {
			return err
		}
		if m.SenderID != nil {
			if err := markSent(tx, c.ID, *m.SenderID, msg.Seq, msg.ID); err != nil {
				return err
			}
		}
		m.Seq, m.CreatedAt = msg.Seq, msg.CreatedAt
		return nil
	})
}

// fanOut moves the members' inbox time to at, a new message's time, unless
// chat c is large.
func fanOut(tx *gorm.DB, c gormChat, at time.Time) error {
	if c.Large {
		return nil
	}
	return tx.Model(&gormMembership{}).Where("chat_id = ?", c.ID).Update("chat_last_message_at", at).Error
}

// markSent moves sender's read position in chatID forward to their message id
// at seq: a member's own messages are not unread.
func markSent(tx *gorm.DB, chatID, sender uuid.UUID, seq int64, id uuid.UUID) error {
	return tx.Model(&gormMembership{}).
		Where("chat_id = ? AND user_id = ? AND read_seq < ?", chatID, sender, seq).
		Updates(map[string]any{"read_seq": seq, "last_read_message_id": id}).Error
}

// laterOf returns the later of now and last: a new message's time in a chat
// whose last message is at last.
func laterOf(now, last time.Time) time.Time {
	if last.After(now) {
		return last
	}
	return now
}

func (s *gormStack) HistoryPage(ctx context.Context, as uuid.UUID, before Cursor, limit int, got *[]HistoryRow) error {
	var page []gormMessage
	err := s.db.WithContext(ctx).
		Where("chat_id = ? AND seq < ?", before.ChatID, before.Seq).
		Order("seq DESC").
		Limit(limit + 1). // one more, to know whether another page follows
		Find(&page).Error
	if err != nil {
		return err
	}
	page = page[:min(limit, len(page))]
	if got != nil {
		rows := make([]HistoryRow, len(page))
		for i := range page {
			rows[i] = HistoryRow{ID: page[i].ID, Seq: page[i].Seq}
		}
		*got = rows
	}
	return nil
}

func (s *gormStack) Inbox(ctx context.Context, userID uuid.UUID, limit int, got *[]InboxRow) error {
	var rows []gormInboxRow
	// The statement names the user twice ($1): GORM's ? placeholders take it
	// twice, in the statement's order.
	if err := s.db.WithContext(ctx).Raw(sqlInboxGorm, userID, userID, limit).Scan(&rows).Error; err != nil {
		return err
	}
	if got != nil {
		out := make([]InboxRow, len(rows))
		for i, r := range rows {
			out[i] = InboxRow{ChatID: r.ID, Unread: int(r.Unread)}
			if r.LmID != nil {
				out[i].LastMessageID, out[i].LastSeq = *r.LmID, *r.LmSeq
			}
		}
		*got = out
	}
	return nil
}

// MarkRead reads the message for its seq, then moves the membership's
// position forward only (in GORM's own transaction, as every write outside
// one); a position already past it updates nothing.
func (s *gormStack) MarkRead(ctx context.Context, userID, chatID, messageID uuid.UUID) error {
	db := s.db.WithContext(ctx)
	var m gormMessage
	if err := db.First(&m, "id = ?", messageID).Error; err != nil {
		return err
	}
	if m.ChatID != chatID {
		return errors.New("bench: gorm: mark read: message of another chat")
	}
	return db.Model(&gormMembership{}).
		Where("user_id = ? AND chat_id = ? AND read_seq < ?", userID, chatID, m.Seq).
		Updates(map[string]any{"read_seq": m.Seq, "last_read_message_id": m.ID}).Error
}

// Import locks the chat, gives the messages the seqs after its last one,
// inserts them with CreateInBatches and does the bumps an append does: the
// chat's, each sender's read position (one UPDATE per sender), the members'
// inbox time.
func (s *gormStack) Import(ctx context.Context, msgs []Message) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var c gormChat
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).First(&c, "id = ?", msgs[0].ChatID).Error; err != nil {
			return err
		}
		rows := make([]gormMessage, len(msgs))
		newest := map[uuid.UUID]int{}
		var senders []uuid.UUID
		for i := range msgs {
			m := &msgs[i]
			rows[i] = gormMessage{ID: m.ID, ChatID: m.ChatID, Seq: c.LastSeq + int64(i) + 1, SenderID: m.SenderID, Role: m.Role,
				Content: m.Content, Metadata: m.Metadata, CreatedAt: m.CreatedAt}
			if m.SenderID != nil {
				if _, ok := newest[*m.SenderID]; !ok {
					senders = append(senders, *m.SenderID)
				}
				newest[*m.SenderID] = i
			}
		}
		if err := tx.CreateInBatches(rows, gormBatch).Error; err != nil {
			return err
		}
		last := rows[len(rows)-1]
		err := tx.Model(&c).Updates(map[string]any{"last_seq": last.Seq, "last_message_at": last.CreatedAt, "updated_at": last.CreatedAt}).Error
		if err != nil {
			return err
		}
		if err := fanOut(tx, c, last.CreatedAt); err != nil {
			return err
		}
		for _, sender := range senders {
			r := rows[newest[sender]]
			if err := markSent(tx, c.ID, sender, r.Seq, r.ID); err != nil {
				return err
			}
		}
		return nil
	})
}
